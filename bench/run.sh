#!/usr/bin/env bash
# make bench / make bench-quick: installs the bench extra (Celery, redis, py-spy) when missing,
# brings up the stack (idempotent) and the peer's Redis, then runs python -m bench "$@".
source "$(dirname "$0")/../infra/lib.sh"

stamp="$GENSTREAM_VENV/.genstream-bench-installed"
hash=$(cat "$GENSTREAM_ROOT/pyproject.toml" "$GENSTREAM_ROOT/infra/deploy/constraints.txt" | sha256sum | cut -c1-16)
if [[ ! -f $stamp || $(cat "$stamp") != "$hash" ]]; then
  log "bench: installing the bench extra (celery[redis], redis, py-spy)"
  "$(python_bin)" -m pip install -q -c "$GENSTREAM_ROOT/infra/deploy/constraints.txt" -e "$GENSTREAM_ROOT[bench]" >"$GENSTREAM_LOG_DIR/pip-bench.log" 2>&1 \
    || die_with_log "$GENSTREAM_LOG_DIR/pip-bench.log" "installing the bench extra failed"
  echo "$hash" >"$stamp"
fi
"$GENSTREAM_ROOT/infra/stack.sh" up
"$GENSTREAM_ROOT/infra/redis.sh" start
# The peer's Redis serves nothing else: it stops with the run, whatever the run's outcome.
trap '"$GENSTREAM_ROOT/infra/redis.sh" stop' EXIT
cd "$GENSTREAM_ROOT" && "$(python_bin)" -m bench "$@"
