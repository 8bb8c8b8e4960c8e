"""Re-running a failed job: a new job with its own id, the same request, charged once.

A failed job's dispatch is parked on the dead-letter topic, but sending it back runs nothing:
the job has ended, and workers skip a dispatch of an ended job as a duplicate. A re-run is a
new job instead. Its row copies the failed job's request and carries the idempotency key
``rerun:<failed job id>``, so asking again (a second redrive, a crash half-way) finds the same
re-run rather than making another. Its ``job.requested`` goes through admission like any
submission: credits are reserved once and settled once for the re-run, and the failed job's
own reservation was already released when it failed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol, cast

from sqlalchemy import Connection, Engine, Table, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from contracts import JOBS_REQUESTED, Envelope, JobStatus, TopicSpec, new_traceparent
from genstream.db.models import Job
from genstream.job_requests import requested_envelope
from genstream.tracing import event_trace

__all__ = [
    "RERUN_KEY_PREFIX",
    "RERUN_SOURCE",
    "Rerun",
    "Sender",
    "claim_rerun",
    "mark_emitted",
    "rerun_failed",
    "rerun_key",
]

RERUN_KEY_PREFIX: Final = "rerun:"
RERUN_SOURCE: Final = "genstream/rerun"
"""The ``source`` of a re-run's ``job.requested``."""
_JOBS: Final = cast(Table, Job.__table__)


class Sender(Protocol):
    """What sends one event and returns once the brokers hold it (``EventProducer`` does)."""

    def send_and_wait(
        self, spec: TopicSpec, envelope: Envelope[Any], *, timeout_s: float
    ) -> Any: ...


def rerun_key(job_id: str) -> str:
    """The idempotency key of the re-run of ``job_id``."""
    return f"{RERUN_KEY_PREFIX}{job_id}"


@dataclass(frozen=True, slots=True)
class Rerun:
    original: str
    how: Literal["created", "existing", "unknown", "not_failed"]
    """``created``: a new job now; ``existing``: re-run before (sent again if it never was);
    ``unknown``: no such job; ``not_failed``: the job has not (yet) failed."""
    job_id: str | None = None
    """The re-run's id, for ``created`` and ``existing``."""


def claim_rerun(connection: Connection, job_id: str) -> tuple[Rerun, Job | None]:
    """Makes (or finds) the re-run row of the failed job ``job_id`` on ``connection``, whose
    caller commits; the row comes back when its ``job.requested`` was never acknowledged
    (send it, then ``mark_emitted``), ``None`` when it was or when there is no re-run."""
    if not connection.in_transaction():
        # Begun here, not by the session, which would roll back what it began when it closes.
        connection.begin()
    with Session(bind=connection, expire_on_commit=False) as session:
        failed = session.get(Job, job_id)
        if failed is None:
            return Rerun(original=job_id, how="unknown"), None
        if failed.status != JobStatus.FAILED.value:
            return Rerun(original=job_id, how="not_failed"), None
        key = rerun_key(job_id)
        made = session.execute(
            insert(_JOBS)
            .values(_rerun_row(failed, key))
            .on_conflict_do_nothing(constraint="uq_jobs_user_idempotency_key")
            .returning(_JOBS.c.id)
        ).scalar_one_or_none()
        rerun = session.scalars(
            select(Job).where(Job.user_id == failed.user_id, Job.idempotency_key == key)
        ).one()
    outcome = Rerun(original=job_id, how="created" if made else "existing", job_id=rerun.id)
    return outcome, rerun if rerun.emitted_at is None else None


def mark_emitted(connection: Connection, job_id: str) -> None:
    """Records that the broker acknowledged the re-run's ``job.requested``."""
    connection.execute(update(Job).where(Job.id == job_id).values(emitted_at=datetime.now(UTC)))


def _rerun_row(failed: Job, key: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": f"job_{uuid.uuid4().hex}",
        "user_id": failed.user_id,
        "type": failed.type,
        "status": JobStatus.PENDING.value,
        "input": failed.input,
        "media": failed.media,
        "webhook_url": failed.webhook_url,
        "idempotency_key": key,
        "request_hash": failed.request_hash,
        "event_id": str(uuid.uuid4()),
        "event_trace": event_trace(new_traceparent()),
        "created_at": now,
        "updated_at": now,
        "webhook_events": failed.webhook_events,
        "metadata": failed.metadata_,
        "end_user": failed.end_user,
        "api_key_id": failed.api_key_id,
        "credits_quoted": failed.credits_quoted,
    }


def rerun_failed(
    engine: Engine,
    producer: Sender,
    job_id: str,
    *,
    topic: TopicSpec = JOBS_REQUESTED,
    timeout_s: float = 30.0,
) -> Rerun:
    """Makes (or finds) the re-run of the failed job ``job_id`` and has its request acknowledged.

    Raises what ``producer`` raises when the broker does not acknowledge the request; asking again
    sends the same event, which consumers deduplicate on its id.
    """
    with engine.begin() as connection:
        outcome, unsent = claim_rerun(connection, job_id)
    if unsent is not None:
        producer.send_and_wait(
            topic, requested_envelope(unsent, source=RERUN_SOURCE), timeout_s=timeout_s
        )
        with engine.begin() as connection:
            mark_emitted(connection, unsent.id)
    return outcome
