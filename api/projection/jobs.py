"""Lifecycle events → ``job_events`` rows, and the ``jobs`` state folded from them.

Idempotent by event id: a redelivered event inserts no row, and only jobs that gained a row
are folded again. Folding a job's whole stored history (in stored order) rather than
patching its row makes the row a pure function of that history, so a rebuild from the
topic gives the same row whatever order copies and retries arrived in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, bindparam, select, text
from sqlalchemy.dialects.postgresql import JSONB, insert

from api.projection.job_state import StoredEvent, fold
from contracts import (
    REGISTRY,
    Envelope,
    JobAccepted,
    JobCancelled,
    JobCompleted,
    JobExpired,
    JobFailed,
    JobPreview,
    JobQueued,
    JobRejected,
    JobRetried,
    JobStarted,
)
from genstream.db.chunks import in_chunks
from genstream.db.read_model import JobEventRow

__all__ = [
    "LIFECYCLE_TYPES",
    "TERMINAL_TYPES",
    "StoredJobs",
    "event_row",
    "refold_jobs",
    "store_job_events",
]

TERMINAL_TYPES: Final = frozenset(
    model.wire_type() for model in (JobCompleted, JobFailed, JobCancelled, JobExpired, JobRejected)
)
"""Wire types that end a job."""

LIFECYCLE_TYPES: Final = TERMINAL_TYPES | frozenset(
    model.wire_type() for model in (JobAccepted, JobQueued, JobStarted, JobPreview, JobRetried)
)
"""What the read model keeps. Commands (requested, cancel requested) are not lifecycle, and
progress never reaches PostgreSQL."""

_UPDATE_JOB = text(
    """
    UPDATE jobs SET
        status = :status, tier = :tier, credits_reserved = :credits_reserved,
        attempt = :attempt, worker_id = :worker_id, queued_at = :queued_at,
        started_at = :started_at, finished_at = :finished_at, error_code = :error_code,
        error = :error, outputs = :outputs, run_ms = :run_ms, preview = :preview,
        updated_at = now()
    WHERE id = :job_id
    """
).bindparams(bindparam("outputs", type_=JSONB), bindparam("preview", type_=JSONB))


@dataclass(frozen=True, slots=True)
class StoredJobs:
    inserted: int
    """Events not seen before."""
    users: frozenset[str]
    """Users whose jobs gained events, to be woken."""


def event_row(envelope: Envelope[Any]) -> dict[str, Any]:
    """The ``job_events`` row of a lifecycle event."""
    return {
        "event_id": envelope.id,
        "job_id": envelope.subject,
        "user_id": envelope.user_id,
        "type": envelope.type,
        "time": envelope.time,
        "data": envelope.data.model_dump(mode="json"),
    }


def store_job_events(connection: Connection, envelopes: Sequence[Envelope[Any]]) -> StoredJobs:
    """Stores the lifecycle events not seen before, in the order given, and refolds their jobs.

    The caller holds the projection's lock (see ``api.projection.projector``), so the
    ``seq`` values given here become visible in their order.
    """
    unique: dict[str, Envelope[Any]] = {}
    for envelope in envelopes:
        if envelope.type in LIFECYCLE_TYPES:
            unique.setdefault(envelope.id, envelope)
    rows = [event_row(envelope) for envelope in unique.values()]
    table = JobEventRow.__table__
    inserted: list[tuple[str, str]] = []
    for chunk in in_chunks(rows):
        statement = (
            insert(JobEventRow)
            .values(chunk)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(table.c.job_id, table.c.user_id)
        )
        inserted += [(job_id, user_id) for job_id, user_id in connection.execute(statement)]
    refold_jobs(connection, {job_id for job_id, _ in inserted})
    return StoredJobs(len(inserted), frozenset(user_id for _, user_id in inserted))


def stored_event(event_id: str, wire_type: str, time: Any, data: dict[str, Any]) -> StoredEvent:
    """A ``job_events`` row as the fold reads it."""
    return StoredEvent(event_id, time, REGISTRY.model_for(wire_type).model_validate(data))


def refold_jobs(connection: Connection, job_ids: Iterable[str]) -> None:
    """Writes each job's state, folded from its stored events, onto its ``jobs`` row.

    A job with events but no row (submitted elsewhere than this API) keeps its events only.
    """
    ids = sorted(job_ids)
    if not ids:
        return
    history: dict[str, list[StoredEvent]] = {job_id: [] for job_id in ids}
    query = (
        select(JobEventRow.job_id, JobEventRow.event_id, JobEventRow.type, JobEventRow.time)
        .add_columns(JobEventRow.data)
        .where(JobEventRow.job_id.in_(ids))
        .order_by(JobEventRow.job_id, JobEventRow.seq)
    )
    for job_id, event_id, wire_type, time, data in connection.execute(query):
        history[job_id].append(stored_event(event_id, wire_type, time, data))
    updates = [{"job_id": job_id, **fold(events).columns()} for job_id, events in history.items()]
    connection.execute(_UPDATE_JOB, updates)
