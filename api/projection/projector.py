"""One projection batch: credits and lifecycle events applied in one transaction.

Every batch first takes a lock of its schema's read model, so batches commit one at a time
in the order they took ``job_events.seq`` values. An event stream that has read up to some
``seq`` has therefore seen every event below it, which makes ``seq`` a safe resume point even
with several projection processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, text

from api.projection.charges import record_charges
from api.projection.jobs import store_job_events
from api.projection.ledger import apply_ledger_events
from contracts import CreditEvent, CreditsReleased, CreditsSettled, Envelope, JobEvent
from genstream.db.read_model import JOB_EVENTS_CHANNEL

__all__ = ["Projection", "lock_read_model"]

_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('genstream.projection:' || current_schema()))")
_NOTIFY = text("SELECT pg_notify(:channel, :user_id)")


def lock_read_model(connection: Connection) -> None:
    """Serialises writers of the read model of the connection's schema until commit."""
    connection.execute(_LOCK)


class Projection:
    """The ``apply`` of the projection service's runner (and of ``genstream replay``).

    With ``notify``, each user whose jobs gained events is announced on the
    ``genstream_job_events`` channel; PostgreSQL delivers it when the batch commits, so API
    processes never wake before the rows are visible.
    """

    def __init__(self, *, notify: bool = True) -> None:
        self._notify = notify

    def __call__(self, connection: Connection, envelopes: Sequence[Envelope[Any]]) -> int:
        """Applies a batch; returns how many events were new."""
        ledger = [e for e in envelopes if isinstance(e.data, CreditEvent)]
        lifecycle = [e for e in envelopes if isinstance(e.data, JobEvent)]
        if not ledger and not lifecycle:
            return 0
        lock_read_model(connection)
        new = apply_ledger_events(connection, ledger) if ledger else 0
        record_charges(
            connection,
            (e.data.job_id for e in ledger if isinstance(e.data, CreditsSettled | CreditsReleased)),
        )
        stored = store_job_events(connection, lifecycle)
        if self._notify:
            for user_id in sorted(stored.users):
                connection.execute(_NOTIFY, {"channel": JOB_EVENTS_CHANNEL, "user_id": user_id})
        return new + stored.inserted
