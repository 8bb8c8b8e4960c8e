"""Credits ledger events → the ``credit_ledger`` rows and ``credit_balances`` they add up to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.dialects.postgresql import insert

from contracts import (
    CreditsGranted,
    CreditsPurchased,
    CreditsReleased,
    CreditsReserved,
    CreditsSettled,
    Envelope,
)
from genstream.db.chunks import in_chunks
from genstream.db.models import CreditLedgerEntry


@dataclass(frozen=True, slots=True)
class LedgerMovement:
    kind: str
    available: int
    """Change of the credits a user can spend."""
    reserved: int
    """Change of the credits held for running jobs."""
    job_id: str | None
    idempotency_key: str
    detail: str | None


def movement(data: Any) -> LedgerMovement:
    """What one ledger event does to a balance; the single definition of ledger arithmetic."""
    match data:
        case CreditsGranted():
            return LedgerMovement(
                "granted", data.amount, 0, None, data.idempotency_key, data.reason
            )
        case CreditsPurchased():
            return LedgerMovement(
                "purchased", data.amount, 0, None, data.idempotency_key, data.payment_id
            )
        case CreditsReserved():
            return LedgerMovement(
                "reserved", -data.amount, data.amount, data.job_id, data.idempotency_key, None
            )
        case CreditsSettled():
            # The hold is lifted whole: the charge is spent and the rest goes back.
            held = data.amount + data.released
            return LedgerMovement(
                "settled", data.released, -held, data.job_id, data.idempotency_key, None
            )
        case CreditsReleased():
            return LedgerMovement(
                "released",
                data.amount,
                -data.amount,
                data.job_id,
                data.idempotency_key,
                data.reason,
            )
    raise TypeError(f"{type(data).__name__} is not a credits ledger event")


_ADD_TO_BALANCE = text(
    """
    INSERT INTO credit_balances (user_id, balance, reserved, updated_at)
    VALUES (:user_id, :available, :reserved, now())
    ON CONFLICT (user_id) DO UPDATE SET
        balance = credit_balances.balance + EXCLUDED.balance,
        reserved = credit_balances.reserved + EXCLUDED.reserved,
        updated_at = now()
    """
)


def ledger_row(envelope: Envelope[Any]) -> dict[str, Any]:
    """The ``credit_ledger`` row of a ledger event."""
    move = movement(envelope.data)
    return {
        "event_id": envelope.id,
        "user_id": envelope.user_id,
        "kind": move.kind,
        "amount": move.available,
        "reserved_change": move.reserved,
        "job_id": move.job_id,
        "idempotency_key": move.idempotency_key,
        "detail": (move.detail or "")[:255] or None,
        "occurred_at": envelope.time,
    }


def first_copies(envelopes: Sequence[Envelope[Any]]) -> list[Envelope[Any]]:
    """One envelope per event id, the first copy of each, in order.

    A copy written again after a crash carries a later time; keeping the first in a batch,
    as across batches, makes a replay cut into other batches store what the live projection
    stored.
    """
    first: dict[str, Envelope[Any]] = {}
    for envelope in envelopes:
        first.setdefault(envelope.id, envelope)
    return list(first.values())


def apply_ledger_events(connection: Connection, envelopes: Sequence[Envelope[Any]]) -> int:
    """Records the events not seen before and moves balances by them; returns how many were new.

    Idempotent by event id: a redelivered event inserts no row and moves no balance.
    """
    rows = [ledger_row(envelope) for envelope in first_copies(envelopes)]
    if not rows:
        return 0
    table = CreditLedgerEntry.__table__
    inserted = [
        row
        for chunk in in_chunks(rows)
        for row in connection.execute(
            insert(CreditLedgerEntry)
            .values(chunk)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(table.c.user_id, table.c.amount, table.c.reserved_change)
        )
    ]
    totals: dict[str, list[int]] = {}
    for user_id, available, reserved in inserted:
        total = totals.setdefault(user_id, [0, 0])
        total[0] += available
        total[1] += reserved
    for user_id, (available, reserved) in sorted(totals.items()):
        connection.execute(
            _ADD_TO_BALANCE, {"user_id": user_id, "available": available, "reserved": reserved}
        )
    return len(inserted)
