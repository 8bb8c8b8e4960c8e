# shellcheck shell=bash
# Shared helpers for the infra scripts: paths, settings, process and port handling.
# Sourced, never executed. Everything listens on loopback only.

set -euo pipefail

GENSTREAM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Downloads and builds (safe to keep between runs) live in .cache; state, logs and pids in var/.
GENSTREAM_CACHE_DIR="${GENSTREAM_CACHE_DIR:-$GENSTREAM_ROOT/.cache}"
GENSTREAM_VAR_DIR="${GENSTREAM_VAR_DIR:-$GENSTREAM_ROOT/var}"
GENSTREAM_HOST=127.0.0.1

GENSTREAM_KAFKA_VERSION="${GENSTREAM_KAFKA_VERSION:-4.3.1}"
GENSTREAM_KAFKA_BROKERS="${GENSTREAM_KAFKA_BROKERS:-1}"
GENSTREAM_KAFKA_PORT="${GENSTREAM_KAFKA_PORT:-9092}"
GENSTREAM_KAFKA_HEAP="${GENSTREAM_KAFKA_HEAP:-512m}"
GENSTREAM_PG_PORT="${GENSTREAM_PG_PORT:-55432}"
GENSTREAM_PG_DB="${GENSTREAM_PG_DB:-genstream}"
GENSTREAM_S3_PORT="${GENSTREAM_S3_PORT:-9000}"
GENSTREAM_S3_CONSOLE_PORT="${GENSTREAM_S3_CONSOLE_PORT:-9001}"
GENSTREAM_MINIO_VERSION="${GENSTREAM_MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
GENSTREAM_API_PORT="${GENSTREAM_API_PORT:-8000}"
GENSTREAM_JAEGER_VERSION="${GENSTREAM_JAEGER_VERSION:-v1.75.0}"
GENSTREAM_JAEGER_UI_PORT="${GENSTREAM_JAEGER_UI_PORT:-16686}"
GENSTREAM_JAEGER_QUERY_GRPC_PORT="${GENSTREAM_JAEGER_QUERY_GRPC_PORT:-16685}"
GENSTREAM_JAEGER_OTLP_GRPC_PORT="${GENSTREAM_JAEGER_OTLP_GRPC_PORT:-4317}"
GENSTREAM_JAEGER_OTLP_HTTP_PORT="${GENSTREAM_JAEGER_OTLP_HTTP_PORT:-4318}"
GENSTREAM_JAEGER_HEALTH_PORT="${GENSTREAM_JAEGER_HEALTH_PORT:-13133}"
GENSTREAM_PROMTOOL_VERSION="${GENSTREAM_PROMTOOL_VERSION:-v0.316.0}"
# The services' metrics ports are this plus one to nine (infra/services.sh).
GENSTREAM_METRICS_PORT_BASE="${GENSTREAM_METRICS_PORT_BASE:-9400}"

GENSTREAM_LOG_DIR="$GENSTREAM_VAR_DIR/log"
GENSTREAM_RUN_DIR="$GENSTREAM_VAR_DIR/run"
GENSTREAM_STACK_ENV="$GENSTREAM_VAR_DIR/stack.env"
GENSTREAM_VENV="${GENSTREAM_VENV:-$GENSTREAM_ROOT/.venv}"

mkdir -p "$GENSTREAM_LOG_DIR" "$GENSTREAM_RUN_DIR"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# die_with_log FILE MESSAGE: shows the end of a server's log, where the reason usually is.
die_with_log() {
  local file=$1
  shift
  if [[ -f $file ]]; then
    printf -- '--- last lines of %s ---\n' "$file" >&2
    grep -v '^[[:space:]]' "$file" | tail -n 15 >&2
  fi
  die "$* (full log: $file)"
}

need_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed: $2"
}

port_open() { (exec 3<>"/dev/tcp/$GENSTREAM_HOST/$1") 2>/dev/null; }

# Fails with a clear message when something that is not ours already holds the port.
ensure_port_free() {
  local port=$1 what=$2
  if port_open "$port"; then
    die "port $port on $GENSTREAM_HOST is taken by another process; $what cannot start (set the port through its GENSTREAM_*_PORT variable)"
  fi
}

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND until it succeeds or the deadline passes.
wait_until() {
  local deadline=$(( $(date +%s) + $1 )) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) >= deadline )); then
      return 1
    fi
    sleep 0.2
  done
  log "$what ready"
}

pidfile() { printf '%s/%s.pid' "$GENSTREAM_RUN_DIR" "$1"; }

# A process that has exited, reaped or not (a zombie holds no ports).
process_gone() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 0
  [[ -z $state || $state == Z ]]
}

pid_running() {
  local file
  file=$(pidfile "$1")
  [[ -f $file ]] && kill -0 "$(cat "$file")" 2>/dev/null
}

# start_daemon NAME LOGFILE COMMAND...: runs COMMAND in its own session so that `make` returning
# does not take it down, and records its pid.
start_daemon() {
  local name=$1 logfile=$2
  shift 2
  setsid "$@" >>"$logfile" 2>&1 </dev/null &
  echo $! >"$(pidfile "$name")"
}

# stop_daemons SECONDS NAME...: TERM to all at once, wait for exits with one deadline, then KILL.
# Together, because a Kafka node's clean shutdown needs the controller quorum that its peers
# form: stopped one after another, the last node waits for a quorum that is already gone.
stop_daemons() {
  local grace=$1 name file pid
  shift
  local -A pids=()
  for name in "$@"; do
    file=$(pidfile "$name")
    [[ -f $file ]] || continue
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      pids[$name]=$pid
    fi
  done
  local deadline=$(( $(date +%s) + grace ))
  for name in "${!pids[@]}"; do
    pid=${pids[$name]}
    while kill -0 "$pid" 2>/dev/null; do
      if (( $(date +%s) >= deadline )); then
        log "$name did not stop in ${grace}s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.2
    done
  done
  for name in "$@"; do rm -f "$(pidfile "$name")"; done
}

stop_daemon() { stop_daemons "${2:-30}" "$1"; }

# Reads or creates the generated local credentials; never committed (var/ is ignored).
load_secrets() {
  local file="$GENSTREAM_VAR_DIR/secrets.env"
  if [[ ! -f $file ]]; then
    umask 077
    {
      printf 'GENSTREAM_PG_PASSWORD=%s\n' "$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
      printf 'GENSTREAM_S3_ACCESS_KEY=%s\n' "gs$(head -c 9 /dev/urandom | base64 | tr -d '/+=')"
      printf 'GENSTREAM_S3_SECRET_KEY=%s\n' "$(head -c 30 /dev/urandom | base64 | tr -d '/+=')"
    } >"$file"
  fi
  # Secrets added in later versions are appended to an existing file.
  if ! grep -q '^GENSTREAM_JWT_SECRET=' "$file"; then
    printf 'GENSTREAM_JWT_SECRET=%s\n' "$(head -c 48 /dev/urandom | base64 | tr -d '/+=')" >>"$file"
  fi
  if ! grep -q '^GENSTREAM_PAYMENTS_WEBHOOK_SECRET=' "$file"; then
    printf 'GENSTREAM_PAYMENTS_WEBHOOK_SECRET=whsec_%s\n' "$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" >>"$file"
  fi
  if ! grep -q '^GENSTREAM_WEBHOOKS_ENCRYPTION_KEY=' "$file"; then
    printf 'GENSTREAM_WEBHOOKS_ENCRYPTION_KEY=%s\n' "$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')" >>"$file"
  fi
  # shellcheck disable=SC1090
  set -a; . "$file"; set +a
}

kafka_bootstrap() {
  local i servers=()
  for (( i = 0; i < GENSTREAM_KAFKA_BROKERS; i++ )); do
    servers+=("$GENSTREAM_HOST:$(( GENSTREAM_KAFKA_PORT + 2 * i ))")
  done
  local IFS=,
  printf '%s' "${servers[*]}"
}

python_bin() { printf '%s/bin/python' "$GENSTREAM_VENV"; }

# The three-broker stack is secured: SASL/SCRAM for every client, an ACL per service
# principal (genstream/kafka/principals.py). The single broker stays PLAINTEXT on loopback.
kafka_secure() { (( GENSTREAM_KAFKA_BROKERS >= 3 )); }
GENSTREAM_KAFKA_SASL_PROTOCOL=SASL_PLAINTEXT
GENSTREAM_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
# Generated with the cluster's storage (never committed; var/ is ignored): name=password lines.
GENSTREAM_KAFKA_CREDENTIALS="$GENSTREAM_VAR_DIR/kafka/n$GENSTREAM_KAFKA_BROKERS/credentials"

# kafka_password NAME: the SCRAM password of the principal NAME on this stack.
kafka_password() {
  local name=$1 line
  [[ -f $GENSTREAM_KAFKA_CREDENTIALS ]] || die "no Kafka credentials at $GENSTREAM_KAFKA_CREDENTIALS; start Kafka first"
  line=$(grep -m1 "^$name=" "$GENSTREAM_KAFKA_CREDENTIALS") \
    || die "no Kafka principal $name in $GENSTREAM_KAFKA_CREDENTIALS (see genstream/kafka/principals.py)"
  printf '%s' "${line#*=}"
}

# use_kafka_principal NAME: exports the settings that make a genstream process started from
# this shell connect as principal NAME (nothing on the single-broker stack).
use_kafka_principal() {
  kafka_secure || return 0
  local password
  password=$(kafka_password "$1") || return 1
  export GENSTREAM_KAFKA__SECURITY_PROTOCOL=$GENSTREAM_KAFKA_SASL_PROTOCOL \
    GENSTREAM_KAFKA__SASL_MECHANISM=$GENSTREAM_KAFKA_SASL_MECHANISM \
    GENSTREAM_KAFKA__SASL_USERNAME=$1 GENSTREAM_KAFKA__SASL_PASSWORD=$password
}

# Finds a PostgreSQL server binary: the newest Debian cluster version first, then PATH.
pg_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x $dir/$1 ]]; then printf '%s/%s' "$dir" "$1"; return 0; fi
  done
  command -v "$1"
}
