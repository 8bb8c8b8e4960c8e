#!/usr/bin/env bash
# Redis from Debian's packages, for the benchmark's Celery peer: a private server on loopback,
# on its own port, with its data, log and pid in var/redis. Nothing of genstream needs it.
# Usage: infra/redis.sh install|start|stop|status
source "$(dirname "$0")/lib.sh"

GENSTREAM_REDIS_PORT="${GENSTREAM_REDIS_PORT:-56379}"
REDIS_DIR="$GENSTREAM_VAR_DIR/redis"
REDIS_LOG="$GENSTREAM_LOG_DIR/redis.log"

install() {
  command -v redis-server >/dev/null 2>&1 && return 0
  need_cmd apt-get "Redis is installed from Debian's packages"
  log "redis: installing redis-server from Debian's packages"
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq || die "apt-get update failed"
  # The package's own service is not wanted: this script runs a private server.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server \
    >/dev/null || die "apt-get install redis-server failed"
  command -v redis-server >/dev/null 2>&1 || die "redis-server installed but not on PATH"
}

ready() { [[ $(redis-cli -h "$GENSTREAM_HOST" -p "$GENSTREAM_REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

start() {
  install
  if pid_running redis && ready; then
    return 0
  fi
  ensure_port_free "$GENSTREAM_REDIS_PORT" Redis
  mkdir -p "$REDIS_DIR"
  # No persistence: the peer's queues are benchmark traffic, thrown away with the server.
  start_daemon redis "$REDIS_LOG" redis-server --bind "$GENSTREAM_HOST" --port "$GENSTREAM_REDIS_PORT" \
    --protected-mode yes --dir "$REDIS_DIR" --save "" --appendonly no --daemonize no
  wait_until 30 "redis (port $GENSTREAM_REDIS_PORT)" ready || die_with_log "$REDIS_LOG" "Redis did not start"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop_daemon redis 15 ;;
  status)
    if pid_running redis && ready; then
      echo "redis: running on $GENSTREAM_HOST:$GENSTREAM_REDIS_PORT ($(redis-server --version | cut -d' ' -f3))"
    else
      echo "redis: stopped"; exit 3
    fi
    ;;
  *) die "usage: $0 install|start|stop|status" ;;
esac
