#!/usr/bin/env bash
# MinIO, a real S3-compatible server, built with go install and run on loopback with generated
# credentials. Buckets are created by `genstream infra bootstrap`.
# Usage: infra/s3.sh start|stop|kill|status
source "$(dirname "$0")/lib.sh"

MINIO="$GENSTREAM_CACHE_DIR/bin/minio"
S3_DATA="$GENSTREAM_VAR_DIR/s3/data"
S3_URL="http://$GENSTREAM_HOST:$GENSTREAM_S3_PORT"

s3_ready() { curl -fsS -o /dev/null --max-time 2 "$S3_URL/minio/health/ready"; }

case "${1:-}" in
  start)
    load_secrets
    "$GENSTREAM_ROOT/infra/setup.sh" s3
    if ! pid_running s3; then
      ensure_port_free "$GENSTREAM_S3_PORT" "the S3 server"
      ensure_port_free "$GENSTREAM_S3_CONSOLE_PORT" "the S3 console"
      mkdir -p "$S3_DATA"
      MINIO_ROOT_USER="$GENSTREAM_S3_ACCESS_KEY" MINIO_ROOT_PASSWORD="$GENSTREAM_S3_SECRET_KEY" \
        MINIO_BROWSER=off MINIO_UPDATE=off \
        start_daemon s3 "$GENSTREAM_LOG_DIR/s3.log" "$MINIO" server "$S3_DATA" --quiet \
        --address "$GENSTREAM_HOST:$GENSTREAM_S3_PORT" \
        --console-address "$GENSTREAM_HOST:$GENSTREAM_S3_CONSOLE_PORT"
    fi
    wait_until 60 "s3 (port $GENSTREAM_S3_PORT)" s3_ready \
      || die_with_log "$GENSTREAM_LOG_DIR/s3.log" "the S3 server did not become ready within 60s"
    ;;
  stop) stop_daemon s3 30 ;;
  kill)
    pid_running s3 && kill -KILL "$(cat "$(pidfile s3)")"
    rm -f "$(pidfile s3)"
    ;;
  status)
    if pid_running s3 && s3_ready; then
      echo "s3: running on $S3_URL (MinIO $GENSTREAM_MINIO_VERSION)"
    else
      echo "s3: stopped"; exit 3
    fi
    ;;
  *) die "usage: $0 start|stop|kill|status" ;;
esac
