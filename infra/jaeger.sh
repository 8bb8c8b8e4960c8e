#!/usr/bin/env bash
# Jaeger, the trace backend of the local stack, built with Go like MinIO and run on loopback:
# OTLP in on 4317 (gRPC) and 4318 (HTTP), the UI and query API on http://127.0.0.1:16686.
# Traces are kept in memory, so a restart forgets them.
# Usage: infra/jaeger.sh start|stop|status
source "$(dirname "$0")/lib.sh"

JAEGER="$GENSTREAM_CACHE_DIR/bin/jaeger"
export GENSTREAM_JAEGER_UI_PORT GENSTREAM_JAEGER_OTLP_GRPC_PORT GENSTREAM_JAEGER_OTLP_HTTP_PORT \
  GENSTREAM_JAEGER_QUERY_GRPC_PORT GENSTREAM_JAEGER_HEALTH_PORT
JAEGER_URL="http://$GENSTREAM_HOST:$GENSTREAM_JAEGER_UI_PORT"

jaeger_ready() {
  curl -fsS -o /dev/null --max-time 2 "http://$GENSTREAM_HOST:$GENSTREAM_JAEGER_HEALTH_PORT/status" \
    && curl -fsS -o /dev/null --max-time 2 "$JAEGER_URL/api/services"
}

case "${1:-}" in
  start)
    "$GENSTREAM_ROOT/infra/setup.sh" jaeger
    if ! pid_running jaeger; then
      for port in "$GENSTREAM_JAEGER_UI_PORT" "$GENSTREAM_JAEGER_OTLP_GRPC_PORT" \
          "$GENSTREAM_JAEGER_OTLP_HTTP_PORT" "$GENSTREAM_JAEGER_QUERY_GRPC_PORT" \
          "$GENSTREAM_JAEGER_HEALTH_PORT"; do
        ensure_port_free "$port" "Jaeger"
      done
      # Jaeger traces its own queries by default, to an OTLP endpoint nobody listens on.
      OTEL_SDK_DISABLED=true OTEL_TRACES_SAMPLER=always_off \
        start_daemon jaeger "$GENSTREAM_LOG_DIR/jaeger.log" \
        "$JAEGER" --config "$GENSTREAM_ROOT/infra/jaeger/config.yaml"
    fi
    wait_until 60 "jaeger ($JAEGER_URL)" jaeger_ready \
      || die_with_log "$GENSTREAM_LOG_DIR/jaeger.log" "Jaeger did not become ready within 60s"
    ;;
  stop) stop_daemon jaeger 30 ;;
  status)
    if pid_running jaeger && jaeger_ready; then
      echo "jaeger: running, UI and query API on $JAEGER_URL, OTLP on $GENSTREAM_HOST:$GENSTREAM_JAEGER_OTLP_GRPC_PORT (gRPC) and :$GENSTREAM_JAEGER_OTLP_HTTP_PORT (HTTP) (Jaeger $GENSTREAM_JAEGER_VERSION)"
    else
      echo "jaeger: stopped"; exit 3
    fi
    ;;
  *) die "usage: $0 start|stop|status" ;;
esac
