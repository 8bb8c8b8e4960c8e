#!/usr/bin/env bash
# Kafka's own command-line tools, from the jars infra/setup.sh fetched next to the broker,
# pointed at this stack. On the three-broker (secured) stack they connect as the admin
# principal, with a client configuration written for the call and removed after it.
#
# Usage: infra/kafka-tools.sh TOOL [ARGS...]   (TOOL may be written kafka-TOOL or kafka-TOOL.sh)
#   topics            --list | --describe [--topic T]
#   consumer-groups   --list | --describe --group G | --describe --all-groups [--members]
#   console-consumer  --topic T [--from-beginning] [--max-messages N] [--property print.key=true]
#   console-producer  --topic T
#   get-offsets       --topic T [--time -1|-2]
#   configs           --describe --entity-type topics --entity-name T
#   acls              --list
#   metadata-quorum   describe --status
# --bootstrap-server is added unless given.
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,15s/^# \{0,1\}//p' "$0" >&2; exit 2; }
(( $# >= 1 )) || usage
tool=${1#kafka-}
tool=${tool%.sh}
shift

case $tool in
  topics) main=org.apache.kafka.tools.TopicCommand ;;
  consumer-groups) main=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
  console-consumer) main=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
  console-producer) main=org.apache.kafka.tools.ConsoleProducer ;;
  get-offsets) main=org.apache.kafka.tools.GetOffsetShell ;;
  configs) main=kafka.admin.ConfigCommand ;;
  acls) main=org.apache.kafka.tools.AclCommand ;;
  metadata-quorum) main=org.apache.kafka.tools.MetadataQuorumCommand ;;
  help|-h|--help) usage ;;
  *) echo "error: unknown tool '$tool'" >&2; usage ;;
esac

KAFKA_LIBS="$GENSTREAM_CACHE_DIR/kafka/$GENSTREAM_KAFKA_VERSION/libs"
[[ -f $KAFKA_LIBS/kafka-tools-$GENSTREAM_KAFKA_VERSION.jar ]] \
  || die "Kafka's tools are not installed; run infra/setup.sh kafka"
need_cmd java "Kafka's tools need a Java 17+ runtime"

args=("$@")
given() { local a; for a in "${args[@]}"; do [[ $a == "$1" || $a == "$1="* ]] && return 0; done; return 1; }
given --bootstrap-server || given --bootstrap-controller || args=(--bootstrap-server "$(kafka_bootstrap)" "${args[@]}")

if kafka_secure; then
  client=$(umask 077 && mktemp "$GENSTREAM_RUN_DIR/kafka-tools.XXXXXX")
  trap 'rm -f "$client"' EXIT
  password=$(kafka_password admin)
  cat >"$client" <<CONF
security.protocol=$GENSTREAM_KAFKA_SASL_PROTOCOL
sasl.mechanism=$GENSTREAM_KAFKA_SASL_MECHANISM
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$password";
CONF
  given --command-config || args=(--command-config "$client" "${args[@]}")
fi

# Not exec: the trap removes the client configuration once the tool ends.
java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
  "-Dlog4j2.configurationFile=$GENSTREAM_ROOT/infra/kafka/tools-log4j2.properties" \
  -cp "$KAFKA_LIBS/*" "$main" "${args[@]}"
