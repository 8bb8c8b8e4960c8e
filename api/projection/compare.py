"""Differences between two read models in one database, found by SQL set difference.

Compared: each job's lifecycle columns, each job's stored events, each user's ledger
entries and balance. Not compared: what the projection does not derive from events (the
submission columns the API writes, ``updated_at``) and the order it stored events in
(``seq``), which depends on how topics interleaved.

Each table is first compared whole by a fingerprint of each side: its row count and the
sum of its rows' hashes, one scan each, with no sorting and no joining. Only a table whose
fingerprints differ is compared row by row. The hash of a row (``hash_record_extended``)
hashes each column as its type's equality sees it (``1.0`` and ``1`` in JSONB alike), the
equality the set difference uses, and every compared table has a unique key, so equal
tables always have equal fingerprints; unequal ones have equal fingerprints with odds of
about one in 2^64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, text

__all__ = ["JOB_STATE_COLUMNS", "Difference", "differences", "quoted"]

JOB_STATE_COLUMNS: Final = (
    "status",
    "tier",
    "credits_reserved",
    "credits_charged",
    "attempt",
    "worker_id",
    "queued_at",
    "started_at",
    "finished_at",
    "error_code",
    "error",
    "outputs",
    "run_ms",
    "preview",
)
"""The ``jobs`` columns the projection owns."""

_EVENT_COLUMNS: Final = "event_id, job_id, user_id, type, time, data"
_LEDGER_COLUMNS: Final = (
    "event_id, user_id, kind, amount, reserved_change, job_id, idempotency_key, detail, occurred_at"
)


@dataclass(frozen=True, slots=True)
class Difference:
    what: str
    """``job``, ``job_events``, ``ledger`` or ``balance``."""
    key: str
    """The job id (``job``, ``job_events``) or user id (``ledger``, ``balance``)."""
    detail: str


def quoted(schema: str) -> str:
    if '"' in schema:
        raise ValueError(f"unusable schema name {schema!r}")
    return f'"{schema}"'


def _symmetric(
    connection: Connection,
    key: str,
    columns: str,
    live: str,
    rebuilt: str,
    table: str,
    where: str = "",
) -> dict[str, tuple[int, int]]:
    """Per key: rows only the live model has, rows only the rebuilt one has."""
    query = f"""
        SELECT {key}, sum(live_only), sum(rebuilt_only) FROM (
            SELECT {key}, 1 AS live_only, 0 AS rebuilt_only FROM (
                SELECT {columns} FROM {live}.{table} {where}
                EXCEPT SELECT {columns} FROM {rebuilt}.{table}
            ) AS l
            UNION ALL
            SELECT {key}, 0, 1 FROM (
                SELECT {columns} FROM {rebuilt}.{table}
                EXCEPT SELECT {columns} FROM {live}.{table} {where}
            ) AS r
        ) AS d GROUP BY {key}
    """  # noqa: S608 - schema names are quoted by ``quoted``; the rest is constant
    return {
        str(found): (int(live_only), int(rebuilt_only))
        for found, live_only, rebuilt_only in connection.execute(text(query))
    }


def _fingerprints(
    connection: Connection, tables: list[tuple[str, str, str]]
) -> list[tuple[int, Any]]:
    """Row count and hash sum of each ``(schema.table, columns, where)``, in one statement."""
    parts = [
        f"SELECT {i} AS i, count(*) AS n, "  # noqa: S608 - quoted schemas, constant names
        f"sum(hash_record_extended(ROW({columns}), 0)) AS h FROM {table} {where}"
        for i, (table, columns, where) in enumerate(tables)
    ]
    query = " UNION ALL ".join(parts) + " ORDER BY i"
    return [(int(n), h) for _, n, h in connection.execute(text(query))]


def _rows(connection: Connection, schema: str, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    query = text(
        f"SELECT id, {', '.join(JOB_STATE_COLUMNS)} FROM {schema}.jobs WHERE id = ANY(:ids)"  # noqa: S608
    )
    return {
        row.id: {column: getattr(row, column) for column in JOB_STATE_COLUMNS}
        for row in connection.execute(query, {"ids": job_ids})
    }


def differences(connection: Connection, *, live: str, rebuilt: str) -> list[Difference]:
    """Every difference; the live model's jobs count only if the rebuilt model has them (a job
    submitted after the rebuild copied the submissions is not the rebuild's to judge)."""
    live, rebuilt = quoted(live), quoted(rebuilt)
    state = ", ".join(("id", *JOB_STATE_COLUMNS))
    copied = f"WHERE id IN (SELECT id FROM {rebuilt}.jobs)"  # noqa: S608 - a quoted schema
    found: list[Difference] = []
    tables = (
        ("job_events", "job_id", _EVENT_COLUMNS, "job_events", "events"),
        ("ledger", "user_id", _LEDGER_COLUMNS, "credit_ledger", "ledger entries"),
        ("balance", "user_id", "user_id, balance, reserved", "credit_balances", "balance rows"),
    )
    sides = [(f"{live}.jobs", state, copied), (f"{rebuilt}.jobs", state, "")]
    for _, _, columns, table, _ in tables:
        sides += [(f"{live}.{table}", columns, ""), (f"{rebuilt}.{table}", columns, "")]
    prints = _fingerprints(connection, sides)
    same = [prints[i] == prints[i + 1] for i in range(0, len(prints), 2)]
    jobs = {} if same[0] else _symmetric(connection, "id", state, live, rebuilt, "jobs", copied)
    if jobs:
        ids = sorted(jobs)
        ours, theirs = _rows(connection, live, ids), _rows(connection, rebuilt, ids)
        for job_id in ids:
            mine, replayed = ours.get(job_id), theirs.get(job_id)
            if mine is None or replayed is None:
                found.append(Difference("job", job_id, "only in the rebuilt read model"))
                continue
            changed = [
                f"{column}: live {mine[column]!r}, replayed {replayed[column]!r}"
                for column in JOB_STATE_COLUMNS
                if mine[column] != replayed[column]
            ]
            found.append(Difference("job", job_id, "; ".join(changed)))
    for (what, key, columns, table, noun), equal in zip(tables, same[1:], strict=True):
        if equal:
            continue
        for value, (live_only, rebuilt_only) in sorted(
            _symmetric(connection, key, columns, live, rebuilt, table).items()
        ):
            detail = f"{live_only} {noun} only live, {rebuilt_only} only replayed"
            found.append(Difference(what, value, detail))
    return found
