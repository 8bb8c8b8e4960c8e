#!/usr/bin/env bash
# `make test`: installs what is missing, lints, starts the real stack if it is not running,
# runs the whole suite against it, and stops the stack again if it started it.
source "$(dirname "$0")/lib.sh"
cd "$GENSTREAM_ROOT"

started=$SECONDS
infra/setup.sh all
log "lint: ruff, ruff format --check, mypy --strict"
"$(python_bin)" -m ruff check .
"$(python_bin)" -m ruff format --check .
"$(python_bin)" -m mypy

was_up=0
infra/stack.sh status >/dev/null 2>&1 && was_up=1
infra/stack.sh up
if (( was_up == 0 )); then
  trap 'infra/stack.sh down' EXIT
fi

rc=0
"$(python_bin)" -m pytest "${@:-tests}" -q -p no:cacheprovider -m "${GENSTREAM_TEST_MARKERS:-not chaos}" || rc=$?
log "make test finished in $(( SECONDS - started ))s (exit $rc)"
exit $rc
