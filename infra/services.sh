#!/usr/bin/env bash
# genstream's own services, in the background, logs in var/log/<service>.log.
# Usage: infra/services.sh up|down|status
source "$(dirname "$0")/lib.sh"

# name|command (run from the checkout's root with the stack's settings in the environment).
# On the secured three-broker stack each service connects as the Kafka principal of its name
# (genstream/kafka/principals.py). The retry relay runs on its own, not inside the workers,
# so that it has a principal of its own.
# Each serves Prometheus metrics on loopback at GENSTREAM_METRICS_PORT_BASE (9400) plus its
# number below (docs/operations.md; genstream status and infra/deploy/prometheus expect them).
WORKER="env GENSTREAM_WORKER_RUN_RETRY_RELAY=false $GENSTREAM_VENV/bin/genstream-worker"
M=$GENSTREAM_METRICS_PORT_BASE
SERVICES=(
  "outbox-relay|env GENSTREAM_OUTBOX_METRICS_PORT=$((M + 1)) $GENSTREAM_VENV/bin/genstream-outbox-relay"
  "projection|env GENSTREAM_PROJECTION_METRICS_PORT=$((M + 2)) $GENSTREAM_VENV/bin/genstream-projection"
  "processors|env GENSTREAM_PROCESSORS_METRICS_PORT=$((M + 3)) $GENSTREAM_VENV/bin/genstream-processors"
  "api|$GENSTREAM_VENV/bin/genstream-api"
  "webhooks|env GENSTREAM_WEBHOOKS__ALLOW_LOOPBACK=true GENSTREAM_WEBHOOKS_METRICS_PORT=$((M + 4)) $GENSTREAM_VENV/bin/genstream-webhooks"
  "worker-image|env GENSTREAM_WORKER_WORKLOAD=image GENSTREAM_WORKER_METRICS_PORT=$((M + 6)) $WORKER"
  "worker-video|env GENSTREAM_WORKER_WORKLOAD=video GENSTREAM_WORKER_METRICS_PORT=$((M + 7)) $WORKER"
  "worker-audio|env GENSTREAM_WORKER_WORKLOAD=audio GENSTREAM_WORKER_METRICS_PORT=$((M + 8)) $WORKER"
  "worker-synthetic|env GENSTREAM_WORKER_WORKLOAD=synthetic GENSTREAM_WORKER_METRICS_PORT=$((M + 9)) $WORKER"
  "retry-relay|env GENSTREAM_WORKER_METRICS_PORT=$((M + 5)) $GENSTREAM_VENV/bin/python -m gpu_consumers.retry_relay"
)

# Without GENSTREAM_WORKER_MODELS (model directories per job type), the workers run tiny
# random-weight models built here offline: every path runs for real, the outputs are noise.
worker_models() {
  if [[ -z ${GENSTREAM_WORKER_MODELS:-} ]]; then
    local dir="$GENSTREAM_VAR_DIR/models/tiny"
    [[ -f $dir/.complete ]] || log "workers: building tiny random-weight models in $dir (set GENSTREAM_WORKER_MODELS for real ones)"
    GENSTREAM_WORKER_MODELS=$("$(python_bin)" -m gpu_consumers.tiny_models "$dir" 2>>"$GENSTREAM_LOG_DIR/tiny-models.log" | tr -d '\n') \
      || die "building the tiny models failed"
    export GENSTREAM_WORKER_MODELS
  fi
}

api_ready() { curl -fsS -o /dev/null --max-time 2 "http://$GENSTREAM_HOST:$GENSTREAM_API_PORT/healthz"; }

up() {
  [[ -f $GENSTREAM_STACK_ENV ]] || die "the stack is not up; run make infra-up first"
  local entry name cmd
  worker_models
  for entry in "${SERVICES[@]}"; do
    name=${entry%%|*}; cmd=${entry#*|}
    pid_running "$name" && continue
    [[ $name == api ]] && ensure_port_free "$GENSTREAM_API_PORT" "the API"
    (cd "$GENSTREAM_ROOT" && set -a && . "$GENSTREAM_STACK_ENV" && set +a && use_kafka_principal "$name" \
      && GENSTREAM_API__PORT="$GENSTREAM_API_PORT" start_daemon "$name" "$GENSTREAM_LOG_DIR/$name.log" $cmd)
  done
  wait_until 60 "api (http://$GENSTREAM_HOST:$GENSTREAM_API_PORT)" api_ready \
    || die_with_log "$GENSTREAM_LOG_DIR/api.log" "the API did not answer /healthz within 60s"
  for entry in "${SERVICES[@]}"; do
    name=${entry%%|*}
    pid_running "$name" || die_with_log "$GENSTREAM_LOG_DIR/$name.log" "$name exited after starting"
  done
}

down() {
  local entry
  for entry in "${SERVICES[@]}"; do stop_daemon "${entry%%|*}" 30; done
}

status() {
  local entry name
  for entry in "${SERVICES[@]}"; do
    name=${entry%%|*}
    if pid_running "$name"; then echo "$name: running (pid $(cat "$(pidfile "$name")"))"; else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status" ;;
esac
