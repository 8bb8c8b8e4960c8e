"""``python -m bench.account_flush``: what writing a busy account costs the processors.

A user with a long history (its ``RECENT_LIMIT`` closed jobs, idempotency keys remembered)
runs more jobs the way the account agent handles them: each event read, applied and set,
and the account written at the end of every batch. The same events go to two tables side by
side: ``AccountTable`` (the account's own record plus sealed records of its oldest entries)
and the account written whole at every flush, as the processors stored it before. Printed:
bytes written to the changelog and CPU time per flush for each, and their ratios.

No broker is involved: the table is an in-memory mapping that counts what reaches the
changelog, so the figures are the processors' own share (the broker then stores those bytes).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from faust.types import TableT

from contracts import (
    Event,
    JobCompleted,
    JobRequested,
    JobStarted,
    JobType,
    SyntheticInput,
    load_catalog,
)
from stream_processors.account_table import AccountTable
from stream_processors.accounts import RECENT_LIMIT, Account, apply

_CATALOG = load_catalog()
_NOW = datetime(2026, 12, 1, tzinfo=UTC)


class _CountingTable(dict[str, bytes]):
    """A faust table's mapping and changelog, counting the bytes sent to the changelog."""

    def __init__(self) -> None:
        super().__init__()
        self.sent_bytes = 0
        self.sent_records = 0

    @property
    def data(self) -> dict[str, bytes]:
        return self

    def send_changelog(self, partition: int, key: str, value: bytes | None) -> None:
        del partition
        self.sent_records += 1
        self.sent_bytes += len(key) + len(value or b"")


class _WholeAccounts:
    """The account written whole at each flush."""

    def __init__(self, table: _CountingTable) -> None:
        self._table = table
        self._live: dict[str, Account] = {}
        self._pending: set[str] = set()

    def get(self, user_id: str) -> Account:
        return self._live.get(user_id) or Account()

    def set(self, user_id: str, account: Account, *, partition: int) -> None:
        del partition
        self._live[user_id] = account
        self._pending.add(user_id)

    def flush(self) -> None:
        for user_id in self._pending:
            stored = self._live[user_id].model_dump_json().encode()
            self._table.send_changelog(0, user_id, stored)
            self._table[user_id] = stored
        self._pending.clear()


def _job_events(index: int) -> list[Event]:
    job = f"job-{index:07d}"
    request = JobRequested(
        job_id=job,
        job_type=JobType.SYNTHETIC,
        input=SyntheticInput(kind="synthetic", steps=1, step_ms=0),
        requested_at=_NOW,
        idempotency_key=f"key-{index}",
    )
    started = JobStarted(job_id=job, worker_id="w", attempt=1)
    done = JobCompleted(job_id=job, attempt=1, worker_id="w", outputs=(), run_ms=1, usage_units=1)
    return [request, started, done]


def _run(accounts: Any, events: list[Event], per_flush: int) -> float:
    """Applies ``events`` in batches of ``per_flush``; returns the seconds spent flushing."""
    flushing = 0.0
    for start in range(0, len(events), per_flush):
        for event in events[start : start + per_flush]:
            after, _ = apply(accounts.get("user"), event, _CATALOG)
            accounts.set("user", after, partition=0)
        began = time.perf_counter()
        accounts.flush()
        flushing += time.perf_counter() - began
    return flushing


def measure(*, history: int, jobs: int, per_flush: int) -> dict[str, float]:
    """Figures per flush for both ways, after ``history`` jobs, over ``jobs`` more."""
    warm = [event for index in range(history) for event in _job_events(index)]
    measured = [event for index in range(history, history + jobs) for event in _job_events(index)]
    results: dict[str, float] = {}
    makers: dict[str, Callable[[_CountingTable], Any]] = {
        "sealed": lambda table: AccountTable(cast(TableT[Any, Any], table)),
        "whole": _WholeAccounts,
    }
    for name, make in makers.items():
        table = _CountingTable()
        accounts = make(table)
        accounts.set("user", Account(balance=10**9), partition=0)
        _run(accounts, warm, per_flush)
        table.sent_bytes = table.sent_records = 0
        seconds = _run(accounts, measured, per_flush)
        flushes = -(-len(measured) // per_flush)
        results[f"{name}.bytes_per_flush"] = table.sent_bytes / flushes
        results[f"{name}.records_per_flush"] = table.sent_records / flushes
        results[f"{name}.us_per_flush"] = seconds / flushes * 1e6
    results["ratio.bytes"] = results["sealed.bytes_per_flush"] / results["whole.bytes_per_flush"]
    results["ratio.cpu"] = results["sealed.us_per_flush"] / results["whole.us_per_flush"]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.account_flush", description=__doc__)
    parser.add_argument("--history", type=int, default=RECENT_LIMIT + 200)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--per-flush", type=int, default=3, help="events of the user per batch")
    args = parser.parse_args(argv)
    results = measure(history=args.history, jobs=args.jobs, per_flush=args.per_flush)
    print(f"account with {args.history} jobs of history, {args.jobs} more, ", end="")
    print(f"{args.per_flush} of its events a batch")
    print(f"{'':18}{'sealed':>12}{'whole':>12}{'ratio':>8}")
    for figure, ratio in (("bytes_per_flush", "bytes"), ("us_per_flush", "cpu")):
        sealed, whole = results[f"sealed.{figure}"], results[f"whole.{figure}"]
        print(f"{figure:18}{sealed:12,.0f}{whole:12,.0f}{results[f'ratio.{ratio}']:8.3f}")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
