#!/usr/bin/env bash
# PostgreSQL from Debian's packages as a cluster in a project-local data directory, on its own
# loopback port, with a password-protected role and the genstream database.
# Usage: infra/postgres.sh start|stop|kill|status
source "$(dirname "$0")/lib.sh"

PG_DIR="$GENSTREAM_VAR_DIR/postgres"
PG_DATA="$PG_DIR/data"
PG_SOCK="$PG_DIR/run"
PG_LOG="$PG_DIR/server.log"
PG_ROLE=genstream

# PostgreSQL refuses to run as root; then the cluster belongs to the postgres system user.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' system user (apt-get install postgresql)"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_ready() { as_owner "$(pg_bin pg_isready)" -q -h "$GENSTREAM_HOST" -p "$GENSTREAM_PG_PORT"; }

psql_admin() {
  PGPASSWORD="$GENSTREAM_PG_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 -h "$GENSTREAM_HOST" \
    -p "$GENSTREAM_PG_PORT" -U "$PG_ROLE" -d postgres "$@"
}

init_cluster() {
  mkdir -p "$PG_DIR"
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres: "$PG_DIR"
    runuser -u postgres -- test -w "$PG_DIR" \
      || die "the postgres user cannot write $PG_DIR; move the checkout somewhere it can reach or set GENSTREAM_VAR_DIR"
  fi
  local pwfile
  pwfile=$(as_owner mktemp)
  printf '%s\n' "$GENSTREAM_PG_PASSWORD" | as_owner tee "$pwfile" >/dev/null
  as_owner "$(pg_bin initdb)" -D "$PG_DATA" -U "$PG_ROLE" --pwfile="$pwfile" -E UTF8 --no-locale \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 >"$GENSTREAM_LOG_DIR/postgres-initdb.log" 2>&1 \
    || { as_owner rm -f "$pwfile"; die_with_log "$GENSTREAM_LOG_DIR/postgres-initdb.log" "initdb failed"; }
  as_owner rm -f "$pwfile"
}

start() {
  load_secrets
  if [[ ! -f $PG_DATA/PG_VERSION ]]; then
    "$GENSTREAM_ROOT/infra/setup.sh" postgres
    init_cluster
  fi
  if ! as_owner "$(pg_bin pg_ctl)" status -D "$PG_DATA" >/dev/null 2>&1; then
    ensure_port_free "$GENSTREAM_PG_PORT" PostgreSQL
    as_owner mkdir -p "$PG_SOCK"
    as_owner "$(pg_bin pg_ctl)" start -D "$PG_DATA" -l "$PG_LOG" -w -t 60 \
      -o "-p $GENSTREAM_PG_PORT -k $PG_SOCK -c listen_addresses=$GENSTREAM_HOST -c max_connections=200" \
      >/dev/null || die_with_log "$PG_LOG" "PostgreSQL did not start"
  fi
  wait_until 60 "postgres (port $GENSTREAM_PG_PORT)" pg_ready || die_with_log "$PG_LOG" "PostgreSQL is not accepting connections"
  if [[ -z $(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$GENSTREAM_PG_DB'") ]]; then
    psql_admin -c "CREATE DATABASE \"$GENSTREAM_PG_DB\"" || die "creating database $GENSTREAM_PG_DB failed"
  fi
}

case "${1:-}" in
  start) start ;;
  stop)
    if [[ -f $PG_DATA/postmaster.pid ]]; then
      as_owner "$(pg_bin pg_ctl)" stop -D "$PG_DATA" -m fast -w -t 60 >/dev/null || true
    fi
    ;;
  kill)
    if [[ -f $PG_DATA/postmaster.pid ]]; then
      kill -KILL "$(head -1 "$PG_DATA/postmaster.pid")" 2>/dev/null || true
    fi
    ;;
  status)
    if [[ -f $PG_DATA/PG_VERSION ]] && pg_ready; then
      echo "postgres: running on $GENSTREAM_HOST:$GENSTREAM_PG_PORT (database $GENSTREAM_PG_DB, $(as_owner "$(pg_bin postgres)" --version))"
    else
      echo "postgres: stopped"; exit 3
    fi
    ;;
  *) die "usage: $0 start|stop|kill|status" ;;
esac
