#!/usr/bin/env bash
# The whole real stack on loopback: Kafka (KRaft), PostgreSQL, the S3 server and Jaeger (traces);
# then topics, migrations and buckets. Idempotent: `up` twice leaves one of each running.
# Usage: infra/stack.sh up|down|status
source "$(dirname "$0")/lib.sh"

write_stack_env() {
  load_secrets
  local rf=1 min_isr=1
  (( GENSTREAM_KAFKA_BROKERS >= 3 )) && { rf=3; min_isr=2; }
  umask 077
  cat >"$GENSTREAM_STACK_ENV.tmp" <<ENV
# Written by infra/stack.sh up: how services reach this machine's stack. Do not commit.
GENSTREAM_KAFKA__BOOTSTRAP_SERVERS=$(kafka_bootstrap)
GENSTREAM_KAFKA__REPLICATION_FACTOR=$rf
GENSTREAM_KAFKA__MIN_INSYNC_REPLICAS=$min_isr
GENSTREAM_PG__HOST=$GENSTREAM_HOST
GENSTREAM_PG__PORT=$GENSTREAM_PG_PORT
GENSTREAM_PG__USER=genstream
GENSTREAM_PG__PASSWORD=$GENSTREAM_PG_PASSWORD
GENSTREAM_PG__DATABASE=$GENSTREAM_PG_DB
GENSTREAM_S3__ENDPOINT_URL=http://$GENSTREAM_HOST:$GENSTREAM_S3_PORT
GENSTREAM_S3__ACCESS_KEY=$GENSTREAM_S3_ACCESS_KEY
GENSTREAM_S3__SECRET_KEY=$GENSTREAM_S3_SECRET_KEY
GENSTREAM_AUTH__JWT_SECRET=$GENSTREAM_JWT_SECRET
GENSTREAM_PAYMENTS__WEBHOOK_SECRET=$GENSTREAM_PAYMENTS_WEBHOOK_SECRET
GENSTREAM_WEBHOOKS__ENCRYPTION_KEY=$GENSTREAM_WEBHOOKS_ENCRYPTION_KEY
# The services' OpenTelemetry spans go to this stack's Jaeger (OTLP over HTTP).
OTEL_EXPORTER_OTLP_ENDPOINT=http://$GENSTREAM_HOST:$GENSTREAM_JAEGER_OTLP_HTTP_PORT
ENV
  if kafka_secure; then
    # Each service gets its own SCRAM user from infra/services.sh; a process given no
    # principal is refused by its settings, not let in.
    cat >>"$GENSTREAM_STACK_ENV.tmp" <<ENV
GENSTREAM_KAFKA__SECURITY_PROTOCOL=$GENSTREAM_KAFKA_SASL_PROTOCOL
GENSTREAM_KAFKA__SASL_MECHANISM=$GENSTREAM_KAFKA_SASL_MECHANISM
ENV
  fi
  mv "$GENSTREAM_STACK_ENV.tmp" "$GENSTREAM_STACK_ENV"
}

up() {
  local started=$SECONDS
  "$GENSTREAM_ROOT/infra/setup.sh" all
  load_secrets
  # The three servers start side by side; each waits for its own readiness with a deadline.
  local pids=() name failed=0
  for name in kafka postgres s3 jaeger; do
    "$GENSTREAM_ROOT/infra/$name.sh" start &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  (( failed == 0 )) || die "the stack did not come up (messages above); logs are in $GENSTREAM_LOG_DIR"
  write_stack_env
  # Exported so that they win over any other stack's var/stack.env in the working directory.
  # Topics are created by the brokers' own super user on the secured stack.
  (set -a && . "$GENSTREAM_STACK_ENV" && set +a && use_kafka_principal admin && cd "$GENSTREAM_ROOT" \
    && "$(python_bin)" -m genstream.cli infra bootstrap) \
    || die "bootstrapping topics, migrations and buckets failed"
  log "stack ready in $(( SECONDS - started ))s: kafka $(kafka_bootstrap), postgres $GENSTREAM_HOST:$GENSTREAM_PG_PORT, s3 http://$GENSTREAM_HOST:$GENSTREAM_S3_PORT, jaeger http://$GENSTREAM_HOST:$GENSTREAM_JAEGER_UI_PORT"
}

down() {
  "$GENSTREAM_ROOT/infra/services.sh" down
  "$GENSTREAM_ROOT/infra/s3.sh" stop
  "$GENSTREAM_ROOT/infra/jaeger.sh" stop
  "$GENSTREAM_ROOT/infra/postgres.sh" stop
  "$GENSTREAM_ROOT/infra/kafka.sh" stop
  log "stack stopped"
}

status() {
  local rc=0
  "$GENSTREAM_ROOT/infra/kafka.sh" status || rc=3
  "$GENSTREAM_ROOT/infra/postgres.sh" status || rc=3
  "$GENSTREAM_ROOT/infra/s3.sh" status || rc=3
  "$GENSTREAM_ROOT/infra/jaeger.sh" status || rc=3
  "$GENSTREAM_ROOT/infra/services.sh" status || true
  return $rc
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status" ;;
esac
