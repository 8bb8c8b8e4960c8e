"""Replacing the live read model by a rebuilt one, in one transaction.

Events both models hold keep their live ``seq``, so event streams resuming from an id they
were given lose nothing and see nothing twice; events only the rebuilt model holds are
added after every live one, and their users' streams are woken.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from api.projection.compare import JOB_STATE_COLUMNS, quoted
from api.projection.projector import lock_read_model
from genstream.db.read_model import JOB_EVENTS_CHANNEL

__all__ = ["SwapCounts", "swap_read_model"]

_EVENT_COLUMNS = "event_id, job_id, user_id, type, time, data"
_LEDGER_COLUMNS = (
    "event_id, user_id, kind, amount, reserved_change, job_id, idempotency_key, detail, occurred_at"
)


@dataclass(frozen=True, slots=True)
class SwapCounts:
    events_removed: int
    events_added: int
    jobs_changed: int
    ledger_removed: int
    ledger_added: int


def _replace_log(
    connection: Connection, *, table: str, columns: str, rebuilt: str
) -> tuple[int, list[str]]:
    """Makes ``table`` (keyed by ``event_id``) hold exactly the rebuilt rows; returns how many
    live rows went and the users of the rows added."""
    live_row = ", ".join(f"l.{c}" for c in columns.split(", "))
    rebuilt_row = ", ".join(f"r.{c}" for c in columns.split(", "))
    removed = connection.execute(
        text(
            f"""
            DELETE FROM {table} AS l WHERE NOT EXISTS (
                SELECT 1 FROM {rebuilt}.{table} AS r
                -- The key first: a join the planner can hash, not a nested loop over both.
                WHERE l.event_id = r.event_id
                    AND ({live_row}) IS NOT DISTINCT FROM ({rebuilt_row})
            )
            """  # noqa: S608 - quoted schema, constant names
        )
    ).rowcount
    added = connection.execute(
        text(
            f"""
            INSERT INTO {table} ({columns})
            SELECT {columns} FROM {rebuilt}.{table} AS r
            WHERE NOT EXISTS (SELECT 1 FROM {table} AS l WHERE l.event_id = r.event_id)
            ORDER BY r.seq
            RETURNING user_id
            """  # noqa: S608
        )
    ).scalars()
    return removed, list(added)


def swap_read_model(connection: Connection, *, rebuilt: str) -> SwapCounts:
    """Makes the connection's schema's read model equal the one in schema ``rebuilt``.

    Writers wait (the projection's lock, then table locks) while readers go on.
    """
    rebuilt = quoted(rebuilt)
    lock_read_model(connection)
    connection.execute(
        text("LOCK TABLE jobs, job_events, credit_ledger, credit_balances IN EXCLUSIVE MODE")
    )
    events_removed, event_users = _replace_log(
        connection, table="job_events", columns=_EVENT_COLUMNS, rebuilt=rebuilt
    )
    ledger_removed, ledger_users = _replace_log(
        connection, table="credit_ledger", columns=_LEDGER_COLUMNS, rebuilt=rebuilt
    )
    live_state = ", ".join(f"l.{c}" for c in JOB_STATE_COLUMNS)
    rebuilt_state = ", ".join(f"r.{c}" for c in JOB_STATE_COLUMNS)
    jobs_changed = connection.execute(
        text(
            f"""
            UPDATE jobs AS l SET ({", ".join(JOB_STATE_COLUMNS)}) = ({rebuilt_state}),
                updated_at = now()
            FROM {rebuilt}.jobs AS r
            WHERE l.id = r.id AND ({live_state}) IS DISTINCT FROM ({rebuilt_state})
            """  # noqa: S608
        )
    ).rowcount
    connection.execute(
        text(
            f"DELETE FROM credit_balances WHERE user_id NOT IN "  # noqa: S608
            f"(SELECT user_id FROM {rebuilt}.credit_balances)"
        )
    )
    connection.execute(
        text(
            f"""
            INSERT INTO credit_balances (user_id, balance, reserved, updated_at)
            SELECT user_id, balance, reserved, now() FROM {rebuilt}.credit_balances
            ON CONFLICT (user_id) DO UPDATE SET
                balance = EXCLUDED.balance, reserved = EXCLUDED.reserved, updated_at = now()
            WHERE (credit_balances.balance, credit_balances.reserved)
                IS DISTINCT FROM (EXCLUDED.balance, EXCLUDED.reserved)
            """  # noqa: S608
        )
    )
    for user_id in sorted(set(event_users)):
        connection.execute(
            text("SELECT pg_notify(:channel, :user_id)"),
            {"channel": JOB_EVENTS_CHANNEL, "user_id": user_id},
        )
    return SwapCounts(
        events_removed, len(event_users), jobs_changed, ledger_removed, len(ledger_users)
    )
