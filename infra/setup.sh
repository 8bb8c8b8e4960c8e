#!/usr/bin/env bash
# Installs everything the stack and the tests need, each step only when missing:
# the Python environment, Kafka's jars (Maven Central), MinIO (go install), PostgreSQL (Debian),
# the web app (npm) and Chromium for the browser tests (Debian).
# Jaeger and promtool (go install).
# Usage: infra/setup.sh [python|kafka|s3|postgres|web|chromium|jaeger|promtool|helm|deploy-schemas|all]
source "$(dirname "$0")/lib.sh"

setup_python() {
  need_cmd python3 "install Python 3.11 or newer"
  local stamp="$GENSTREAM_VENV/.genstream-installed" hash
  hash=$(cat "$GENSTREAM_ROOT/pyproject.toml" "$GENSTREAM_ROOT/infra/deploy/constraints.txt" | sha256sum | cut -c1-16)
  if [[ -f $stamp && $(cat "$stamp") == "$hash" ]]; then
    return 0
  fi
  log "python: creating $GENSTREAM_VENV and installing genstream with its dev tools and the model runtimes (torch, diffusers, transformers)"
  [[ -x $(python_bin) ]] || python3 -m venv "$GENSTREAM_VENV"
  local pip_log="$GENSTREAM_LOG_DIR/pip.log"
  # The same install step as the container images (infra/deploy/docker/Dockerfile).
  if ! "$GENSTREAM_ROOT/infra/deploy/python-install.sh" "$(python_bin)" "$GENSTREAM_ROOT" dev,gpu \
      --editable >"$pip_log" 2>&1; then
    tail -n 30 "$pip_log" >&2
    die "installing the Python dependencies failed (full log: $pip_log)"
  fi
  echo "$hash" >"$stamp"
}

setup_kafka() {
  local libs="$GENSTREAM_CACHE_DIR/kafka/$GENSTREAM_KAFKA_VERSION/libs" hash
  # The stamp holds the pom's hash: a jar added to the pom (the tools, say) is fetched next time.
  hash=$(sha256sum "$GENSTREAM_ROOT/infra/kafka/pom.xml" | cut -c1-16)
  if [[ -f $libs/.complete && $(cat "$libs/.complete") == "$hash" ]]; then
    return 0
  fi
  need_cmd java "Kafka needs a Java 17+ runtime (apt-get install openjdk-17-jre-headless)"
  need_cmd mvn "Kafka is assembled from Maven Central with mvn (apt-get install maven)"
  local major
  major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  (( major >= 17 )) || die "Kafka $GENSTREAM_KAFKA_VERSION needs Java 17 or newer; found Java $major"
  log "kafka: fetching Apache Kafka $GENSTREAM_KAFKA_VERSION from Maven Central"
  rm -rf "$libs"
  mvn -B -f "$GENSTREAM_ROOT/infra/kafka/pom.xml" \
    -Dmaven.repo.local="$GENSTREAM_CACHE_DIR/m2" \
    -Dkafka.version="$GENSTREAM_KAFKA_VERSION" \
    -Dkafka.libdir="$libs" dependency:copy-dependencies >"$GENSTREAM_LOG_DIR/kafka-fetch.log" 2>&1 \
    || die_with_log "$GENSTREAM_LOG_DIR/kafka-fetch.log" \
      "downloading Kafka $GENSTREAM_KAFKA_VERSION from Maven Central failed"
  [[ -f $libs/kafka_2.13-$GENSTREAM_KAFKA_VERSION.jar ]] || die "Kafka jars missing after download"
  [[ -f $libs/kafka-tools-$GENSTREAM_KAFKA_VERSION.jar ]] || die "Kafka's tools jar missing after download"
  echo "$hash" >"$libs/.complete"
}

setup_s3() {
  local bin="$GENSTREAM_CACHE_DIR/bin/minio" stamp="$GENSTREAM_CACHE_DIR/bin/minio.version"
  if [[ -x $bin && -f $stamp && $(cat "$stamp") == "$GENSTREAM_MINIO_VERSION" ]]; then
    return 0
  fi
  need_cmd go "MinIO is built with go install (install Go 1.24 or newer)"
  log "s3: building MinIO $GENSTREAM_MINIO_VERSION with go install (a few minutes on 2 cores)"
  local gopath="$GENSTREAM_CACHE_DIR/go"
  export GOBIN="$GENSTREAM_CACHE_DIR/bin" GOPATH="$gopath" GOMODCACHE="$gopath/mod" \
    GOCACHE="$gopath/build" GOFLAGS=-modcacherw
  go install "github.com/minio/minio@$GENSTREAM_MINIO_VERSION" >"$GENSTREAM_LOG_DIR/minio-build.log" 2>&1 \
    || die_with_log "$GENSTREAM_LOG_DIR/minio-build.log" "building MinIO failed"
  echo "$GENSTREAM_MINIO_VERSION" >"$stamp"
  # Sources and build cache (over a gigabyte) are only needed to build; the binary is what we keep.
  go clean -modcache -cache
}

# Helm renders and lints the chart in infra/deploy/helm; built with go install like MinIO.
setup_helm() {
  local version=${GENSTREAM_HELM_VERSION:-v4.3.2}
  local bin="$GENSTREAM_CACHE_DIR/bin/helm" stamp="$GENSTREAM_CACHE_DIR/bin/helm.version"
  if [[ -x $bin && -f $stamp && $(cat "$stamp") == "$version" ]]; then
    return 0
  fi
  need_cmd go "Helm is built with go install (install Go 1.24 or newer)"
  log "helm: building Helm $version with go install (a few minutes on 2 cores)"
  local gopath="$GENSTREAM_CACHE_DIR/go"
  (
    export GOBIN="$GENSTREAM_CACHE_DIR/bin" GOPATH="$gopath" GOMODCACHE="$gopath/mod" \
      GOCACHE="$gopath/build" GOFLAGS=-modcacherw
    go install "helm.sh/helm/v4/cmd/helm@$version" && go clean -modcache -cache
  ) >"$GENSTREAM_LOG_DIR/helm-build.log" 2>&1 \
    || die_with_log "$GENSTREAM_LOG_DIR/helm-build.log" "building Helm failed"
  echo "$version" >"$stamp"
}

# The schemas the chart's rendered manifests are checked against beside Kubernetes' own
# (which the kubernetes-validate package ships): KEDA's CRDs from its Go module, Strimzi's
# from the npm package of validators generated from its CRDs.
setup_deploy_schemas() {
  local keda=${GENSTREAM_KEDA_VERSION:-v2.21.1} strimzi=${GENSTREAM_STRIMZI_MODELS_VERSION:-1.0.1}
  local dir="$GENSTREAM_CACHE_DIR/deploy-schemas" want
  want="keda $keda strimzi-models $strimzi"
  if [[ -f $dir/.complete && $(cat "$dir/.complete") == "$want" ]]; then
    return 0
  fi
  need_cmd go "KEDA's CRDs come from its Go module (install Go 1.24 or newer)"
  need_cmd npm "Strimzi's CRD validators come from the npm registry (install Node.js and npm)"
  log "deploy schemas: KEDA $keda CRDs (Go module proxy), Strimzi validators $strimzi (npm)"
  rm -rf "$dir" && mkdir -p "$dir/keda" "$dir/strimzi"
  local gopath="$GENSTREAM_CACHE_DIR/go-keda" fetch_log="$GENSTREAM_LOG_DIR/deploy-schemas.log"
  local extract_crds='
import pathlib, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive:
    for name in archive.namelist():
        if "/config/crd/bases/keda.sh_" in name and name.endswith(".yaml"):
            pathlib.Path(sys.argv[2], name.rsplit("/", 1)[1]).write_bytes(archive.read(name))
'
  (
    export GOPATH="$gopath" GOMODCACHE="$gopath/mod" GOFLAGS=-modcacherw
    # The module's zip, not its extracted tree: extraction is refused when the module asks
    # for a newer Go than the one here (go then exits non-zero, the zip downloaded all the
    # same), and only its YAML is wanted.
    zip=$( { go mod download -json "github.com/kedacore/keda/v2@$keda" || true; } \
      | sed -n 's/^[[:space:]]*"Zip": "\(.*\)",$/\1/p') && [[ -f $zip ]] \
      && python3 -c "$extract_crds" "$zip" "$dir/keda" \
      && npm install --prefix "$dir/strimzi" --no-audit --no-fund --loglevel=error \
        "@kubernetes-models/strimzi-kafka-operator@$strimzi"
  ) >"$fetch_log" 2>&1 || die_with_log "$fetch_log" "fetching the deploy schemas failed"
  chmod -R u+w "$gopath" && rm -rf "$gopath"
  echo "$want" >"$dir/.complete"
}

setup_postgres() {
  if pg_bin initdb >/dev/null 2>&1; then
    return 0
  fi
  need_cmd apt-get "PostgreSQL is installed from Debian's packages"
  log "postgres: installing PostgreSQL from Debian's packages"
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null \
    || die "apt-get install postgresql failed"
  pg_bin initdb >/dev/null || die "PostgreSQL installed but initdb not found"
}

# go_build_tool NAME MODULE VERSION PACKAGE: builds one Go program into .cache/bin, once per version.
# Built inside the downloaded module rather than by `go install MODULE@VERSION`, which refuses
# modules whose go.mod has replace directives (Jaeger's has).
go_build_tool() {
  local name=$1 module=$2 version=$3 package=$4
  local bin="$GENSTREAM_CACHE_DIR/bin/$name" stamp="$GENSTREAM_CACHE_DIR/bin/$name.version"
  if [[ -x $bin && -f $stamp && $(cat "$stamp") == "$version" ]]; then
    return 0
  fi
  need_cmd go "$name is built with Go (install Go 1.24 or newer)"
  # One build at a time (make up and a test's private stack may both ask): the others wait
  # for it and find the binary there.
  mkdir -p "$GENSTREAM_CACHE_DIR/bin"
  local lock
  exec {lock}>"$GENSTREAM_CACHE_DIR/bin/.$name.lock"
  flock "$lock"
  if [[ -x $bin && -f $stamp && $(cat "$stamp") == "$version" ]]; then
    exec {lock}>&-
    return 0
  fi
  log "$name: building $module@$version with Go (minutes on 2 cores)"
  local gopath="$GENSTREAM_CACHE_DIR/go-$name" build_log="$GENSTREAM_LOG_DIR/$name-build.log"
  (
    # GOWORK=off: a module's go.work names modules its published zip leaves out (Prometheus').
    export GOPATH="$gopath" GOMODCACHE="$gopath/mod" GOCACHE="$gopath/build" GOFLAGS=-modcacherw \
      GOTOOLCHAIN=local GOWORK=off
    dir=$(cd "$GENSTREAM_CACHE_DIR" && go mod download -json "$module@$version" \
      | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') && [[ -n $dir ]] \
      && cd "$dir" && go build -trimpath -o "$bin.tmp" "$package"
  ) >"$build_log" 2>&1 || die_with_log "$build_log" "building $name failed"
  mv "$bin.tmp" "$bin"
  echo "$version" >"$stamp"
  # Sources and build cache (gigabytes) are only needed to build; the binary is what we keep.
  chmod -R u+w "$gopath" && rm -rf "$gopath"
  exec {lock}>&-
}

setup_jaeger() {
  go_build_tool jaeger github.com/jaegertracing/jaeger "$GENSTREAM_JAEGER_VERSION" ./cmd/jaeger
}

# promtool checks the Prometheus scrape configuration and alert rules in infra/deploy/prometheus.
setup_promtool() {
  go_build_tool promtool github.com/prometheus/prometheus "$GENSTREAM_PROMTOOL_VERSION" ./cmd/promtool
}

# The web app (web/): npm ci and a Vite build into web/dist, which the API serves; again only
# when its sources, its lock file or the job schemas it builds forms from changed.
setup_web() {
  need_cmd npm "the web app is built with Node.js 20.19+ and npm (apt-get install nodejs npm)"
  local web="$GENSTREAM_ROOT/web" stamp="$GENSTREAM_ROOT/web/dist/.genstream-built" hash
  hash=$(cd "$GENSTREAM_ROOT" && find web/src web/public web/package.json web/package-lock.json \
      web/index.html web/vite.config.ts web/tsconfig.json \
      contracts/schemas/genstream.job.requested.v1.json -type f -print0 \
    | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  if [[ -f $stamp && $(cat "$stamp") == "$hash" ]]; then
    return 0
  fi
  log "web: installing the app's packages (npm ci) and building it (Vite) into web/dist"
  local web_log="$GENSTREAM_LOG_DIR/web-build.log"
  (cd "$web" && export npm_config_cache="$GENSTREAM_CACHE_DIR/npm" \
    && npm ci --no-audit --no-fund --loglevel=error && npm run build) >"$web_log" 2>&1 \
    || die_with_log "$web_log" "building the web app failed"
  echo "$hash" >"$stamp"
}

# Debian's Chromium, which the browser tests drive (tests/browser); never a downloaded one.
setup_chromium() {
  if [[ -x /usr/bin/chromium ]]; then
    return 0
  fi
  need_cmd apt-get "Chromium for the browser tests is installed from Debian's packages"
  log "chromium: installing Chromium from Debian's packages (for the browser tests)"
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null \
    || die "apt-get install chromium failed"
}

case "${1:-all}" in
  python) setup_python ;;
  kafka) setup_kafka ;;
  s3) setup_s3 ;;
  postgres) setup_postgres ;;
  helm) setup_helm ;;
  deploy-schemas) setup_deploy_schemas ;;
  web) setup_web ;;
  chromium) setup_chromium ;;
  jaeger) setup_jaeger ;;
  promtool) setup_promtool ;;
  all) setup_python; setup_kafka; setup_postgres; setup_s3; setup_jaeger; setup_promtool; setup_web; setup_chromium; setup_helm; setup_deploy_schemas ;;
  *) die "usage: $0 [python|kafka|s3|postgres|web|chromium|jaeger|promtool|helm|deploy-schemas|all]" ;;
esac
