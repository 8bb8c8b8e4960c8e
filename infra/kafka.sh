#!/usr/bin/env bash
# Apache Kafka in KRaft mode on loopback: GENSTREAM_KAFKA_BROKERS nodes (1, or 3 for the fault
# tests), each a combined broker+controller. Node i listens on GENSTREAM_KAFKA_PORT + 2(i-1)
# for clients and the next port for the controller quorum.
# One node listens PLAINTEXT on loopback. Three are secured: clients and brokers authenticate
# with SASL/SCRAM-SHA-512 on the client port (the brokers as the super user admin, which
# controller traffic uses too, over SASL/PLAIN: KRaft controllers cannot check SCRAM), the
# StandardAuthorizer denies what no ACL allows, and the SCRAM users and ACLs are those of
# genstream/kafka/principals.py, each with a password generated into the cluster's directory.
# Usage: infra/kafka.sh start|stop|status [NODE]
source "$(dirname "$0")/lib.sh"

KAFKA_LIBS="$GENSTREAM_CACHE_DIR/kafka/$GENSTREAM_KAFKA_VERSION/libs"
KAFKA_DIR="$GENSTREAM_VAR_DIR/kafka/n$GENSTREAM_KAFKA_BROKERS"
N=$GENSTREAM_KAFKA_BROKERS
(( N == 1 || N == 3 )) || die "GENSTREAM_KAFKA_BROKERS must be 1 or 3, not $N"

client_port() { echo $(( GENSTREAM_KAFKA_PORT + 2 * ($1 - 1) )); }
controller_port() { echo $(( GENSTREAM_KAFKA_PORT + 2 * ($1 - 1) + 1 )); }

voters() {
  local i out=()
  for (( i = 1; i <= N; i++ )); do out+=("$i@$GENSTREAM_HOST:$(controller_port "$i")"); done
  local IFS=,
  printf '%s' "${out[*]}"
}

java_cmd() {
  printf '%s\n' java "-Xms$GENSTREAM_KAFKA_HEAP" "-Xmx$GENSTREAM_KAFKA_HEAP" -XX:+UseG1GC \
    -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$GENSTREAM_ROOT/infra/kafka/log4j2.properties" \
    -cp "$KAFKA_LIBS/*"
}

plaintext_listeners() {
  cat <<CONF
listeners=PLAINTEXT://$GENSTREAM_HOST:$(client_port "$1"),CONTROLLER://$GENSTREAM_HOST:$(controller_port "$1")
advertised.listeners=PLAINTEXT://$GENSTREAM_HOST:$(client_port "$1")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
CONF
}

secured_listeners() {
  local admin
  admin=$(kafka_password admin) || return 1
  cat <<CONF
listeners=SASL_PLAINTEXT://$GENSTREAM_HOST:$(client_port "$1"),CONTROLLER://$GENSTREAM_HOST:$(controller_port "$1")
advertised.listeners=SASL_PLAINTEXT://$GENSTREAM_HOST:$(client_port "$1")
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_PLAINTEXT
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
sasl.enabled.mechanisms=$GENSTREAM_KAFKA_SASL_MECHANISM
sasl.mechanism.inter.broker.protocol=$GENSTREAM_KAFKA_SASL_MECHANISM
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin" user_admin="$admin";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin
allow.everyone.if.no.acl.found=false
CONF
}

write_config() {
  local i=$1 dir="$KAFKA_DIR/node$1" min_isr=1 listeners
  (( N >= 3 )) && min_isr=2
  mkdir -p "$dir/data"
  if kafka_secure; then
    listeners=$(secured_listeners "$i") || die "node $i has no brokers' password"
  else
    listeners=$(plaintext_listeners "$i")
  fi
  # The secured node's file holds the brokers' password.
  (umask 077 && cat >"$dir/server.properties") <<CONF
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$(voters)
$listeners
log.dirs=$dir/data
auto.create.topics.enable=false
num.partitions=6
default.replication.factor=$N
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$N
transaction.state.log.replication.factor=$N
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$N
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
log.retention.hours=168
num.network.threads=2
num.io.threads=4
CONF
  chmod 600 "$dir/server.properties"
}

cluster_id() {
  local file="$KAFKA_DIR/cluster.id"
  if [[ ! -f $file ]]; then
    mkdir -p "$KAFKA_DIR"
    # Kafka's own ids never start with '-' (argparse would read one as a flag); neither do ours.
    python3 -c 'import base64, uuid
while (cid := base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()).startswith("-"):
    pass
print(cid)' >"$file"
  fi
  cat "$file"
}

# The SCRAM users the storage is formatted with: admin and every principal, from the
# credentials file.
scram_users() {
  local name password
  while IFS='=' read -r name password; do
    [[ -z $name || $name == \#* ]] && continue
    printf '%s\n' "--add-scram=$GENSTREAM_KAFKA_SASL_MECHANISM=[name=$name,password=$password]"
  done <"$GENSTREAM_KAFKA_CREDENTIALS"
}

# Passwords for admin and every principal the table names, kept from earlier starts.
ensure_credentials() {
  [[ -x $(python_bin) ]] || die "the secured three-broker Kafka needs the Python environment (infra/setup.sh python)"
  (cd "$GENSTREAM_ROOT" && "$(python_bin)" -m genstream.kafka.acls credentials "$GENSTREAM_KAFKA_CREDENTIALS") \
    || die "generating the Kafka credentials failed"
}

# The ACLs of every principal, derived from genstream/kafka/principals.py (and its SCRAM
# user where the cluster was formatted before it existed). Idempotent.
apply_acls() {
  local out
  out=$(cd "$GENSTREAM_ROOT" && "$(python_bin)" -m genstream.kafka.acls apply \
    --bootstrap "$(kafka_bootstrap)" --credentials "$GENSTREAM_KAFKA_CREDENTIALS" --brokers "$N" 2>&1) \
    || die "setting the Kafka ACLs failed: $out"
  log "$out"
}

start_node() {
  local i=$1 name="kafka-$1" cmd
  if pid_running "$name"; then
    return 0
  fi
  ensure_port_free "$(client_port "$i")" "Kafka node $i"
  ensure_port_free "$(controller_port "$i")" "Kafka node $i's controller"
  write_config "$i"
  mapfile -t cmd < <(java_cmd)
  if [[ ! -f $KAFKA_DIR/node$i/data/meta.properties ]]; then
    local users=()
    kafka_secure && mapfile -t users < <(scram_users)
    "${cmd[@]}" kafka.tools.StorageTool format "--cluster-id=$(cluster_id)" \
      -c "$KAFKA_DIR/node$i/server.properties" "${users[@]}" >>"$GENSTREAM_LOG_DIR/$name.log" 2>&1 \
      || die_with_log "$GENSTREAM_LOG_DIR/$name.log" "formatting Kafka storage for node $i failed"
  fi
  start_daemon "$name" "$GENSTREAM_LOG_DIR/$name.log" "${cmd[@]}" kafka.Kafka "$KAFKA_DIR/node$i/server.properties"
}

wait_node() {
  local i=$1
  wait_until 90 "kafka node $i (port $(client_port "$i"))" port_open "$(client_port "$i")" \
    || die_with_log "$GENSTREAM_LOG_DIR/kafka-$i.log" "Kafka node $i did not open port $(client_port "$i") within 90s"
  pid_running "kafka-$i" || die_with_log "$GENSTREAM_LOG_DIR/kafka-$i.log" "Kafka node $i exited"
}

node_gone() {
  process_gone "$1" && ! port_open "$(client_port "$2")" && ! port_open "$(controller_port "$2")"
}

nodes() { if [[ -n ${1:-} ]]; then echo "$1"; else seq 1 "$N"; fi; }

case "${1:-}" in
  start)
    [[ -f $KAFKA_LIBS/.complete ]] || "$GENSTREAM_ROOT/infra/setup.sh" kafka
    need_cmd java "Kafka needs a Java 17+ runtime (apt-get install openjdk-17-jre-headless)"
    kafka_secure && ensure_credentials
    for i in $(nodes "${2:-}"); do start_node "$i"; done
    for i in $(nodes "${2:-}"); do wait_node "$i"; done
    # A node started alone rejoins a cluster that has its ACLs already.
    if kafka_secure && [[ -z ${2:-} ]]; then apply_acls; fi
    ;;
  stop)
    names=()
    for i in $(nodes "${2:-}"); do names+=("kafka-$i"); done
    stop_daemons 60 "${names[@]}"
    ;;
  kill)
    # Abrupt death, for fault tests: no clean shutdown, the node recovers its log on start.
    # It returns once the process is gone, so a start right after finds its ports free.
    for i in $(nodes "${2:-}"); do
      if pid_running "kafka-$i"; then
        pid=$(cat "$(pidfile "kafka-$i")")
        kill -KILL "$pid"
        # A JVM's threads outlive its main thread for a moment, and with them its sockets.
        wait_until 30 "kafka node $i to exit" node_gone "$pid" "$i" \
          || die "Kafka node $i (pid $pid) did not exit within 30s of SIGKILL"
      fi
      rm -f "$(pidfile "kafka-$i")"
    done
    ;;
  status)
    rc=0
    for i in $(nodes "${2:-}"); do
      if pid_running "kafka-$i" && port_open "$(client_port "$i")"; then
        echo "kafka node $i: running on $GENSTREAM_HOST:$(client_port "$i") (Kafka $GENSTREAM_KAFKA_VERSION, KRaft)"
      else
        echo "kafka node $i: stopped"; rc=3
      fi
    done
    exit $rc
    ;;
  *) die "usage: $0 start|stop|kill|status [NODE]" ;;
esac
