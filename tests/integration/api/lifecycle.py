"""Jobs for read-model tests: rows as the API writes them, and lifecycles as the writers do.

``Story`` builds a job's lifecycle and ledger events with the ids the real writers give
them (derived ids where the processors and workers derive them, fresh ones elsewhere).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from api.projection.compare import JOB_STATE_COLUMNS
from api.projection.projector import Projection
from contracts import (
    CreditsGranted,
    CreditsReleased,
    CreditsReserved,
    CreditsSettled,
    Envelope,
    Event,
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
    JobType,
    OutputFile,
    RejectReason,
    SyntheticInput,
    Tier,
    derived_event_id,
    new_traceparent,
    tier_topic,
)
from genstream.db.models import Job, User
from genstream.db.read_model import JobEventRow

SOURCE = "genstream/tests"


def add_user(engine: Engine) -> str:
    user_id = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(insert(User).values(id=user_id, email=f"{user_id.hex}@example.com"))
    return str(user_id)


def add_job(
    engine: Engine,
    user_id: str,
    *,
    job_type: JobType = JobType.SYNTHETIC,
    created_at: datetime | None = None,
    job_id: str | None = None,
) -> str:
    """A job row as ``POST /v1/jobs`` leaves it: pending, its submission acknowledged."""
    job_id = job_id or f"job_{uuid.uuid4().hex}"
    created_at = created_at or datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(Job).values(
                id=job_id,
                user_id=uuid.UUID(user_id),
                type=job_type.value,
                status="pending",
                input=SyntheticInput().model_dump(mode="json"),
                request_hash="0" * 64,
                event_id=str(uuid.uuid4()),
                event_trace=new_traceparent(),
                emitted_at=created_at,
                created_at=created_at,
                updated_at=created_at,
            )
        )
    return job_id


def job_row(engine: Engine, job_id: str) -> dict[str, Any]:
    with Session(engine) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return {column: getattr(job, column) for column in JOB_STATE_COLUMNS}


def stored_event_ids(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(JobEventRow.event_id).order_by(JobEventRow.seq)))


def project(engine: Engine, envelopes: Sequence[Envelope[Any]]) -> int:
    """Applies one batch as the projection service does, notifications included."""
    with engine.begin() as connection:
        return Projection()(connection, envelopes)


class Story:
    """One job's events, each a second after the last unless told otherwise."""

    def __init__(
        self,
        user_id: str,
        job_id: str,
        *,
        job_type: JobType = JobType.SYNTHETIC,
        tier: Tier = Tier.PRO,
        start: datetime | None = None,
    ) -> None:
        self.user_id = user_id
        self.job_id = job_id
        self.job_type = job_type
        self.tier = tier
        self._clock = start or datetime.now(UTC)

    def at(self, data: Event, *, event_id: str | None = None) -> Envelope[Any]:
        self._clock += timedelta(seconds=1)
        return Envelope.wrap(
            data, user_id=self.user_id, source=SOURCE, event_id=event_id, time=self._clock
        )

    def derived(self, data: Event, attempt: int | None = None) -> Envelope[Any]:
        return self.at(data, event_id=derived_event_id(data, attempt=attempt))

    def accepted(self, credits: int = 5) -> Envelope[Any]:
        return self.derived(
            JobAccepted(
                job_id=self.job_id, job_type=self.job_type, tier=self.tier, credits_reserved=credits
            )
        )

    def queued(self) -> Envelope[Any]:
        data = JobQueued(
            job_id=self.job_id,
            job_type=self.job_type,
            tier=self.tier,
            input=SyntheticInput(),
            attempt=1,
            topic=tier_topic(self.job_type, self.tier),
        )
        return self.derived(data, attempt=1)

    def started(self, worker_id: str = "worker-1", attempt: int = 1) -> Envelope[Any]:
        return self.at(JobStarted(job_id=self.job_id, worker_id=worker_id, attempt=attempt))

    def preview(self, step: int, attempt: int = 1) -> Envelope[Any]:
        key = f"outputs/{self.user_id}/{self.job_id}/preview-{attempt}-{step}"
        return self.at(
            JobPreview(
                job_id=self.job_id,
                attempt=attempt,
                step=step,
                preview_key=key,
                content_type="image/png",
                blurhash="LEHV6nWB2yk8pyo0adR*.7kCMdnj",
            )
        )

    def retried(self, attempt: int) -> Envelope[Any]:
        data = JobRetried(
            job_id=self.job_id,
            attempt=attempt,
            delay_ms=100,
            error_code="transient_error",
            error_message="the GPU went away",
        )
        return self.derived(data, attempt=attempt)

    def completed(
        self,
        worker_id: str = "worker-1",
        attempt: int = 1,
        outputs: Sequence[OutputFile] | None = None,
        run_ms: int = 1200,
    ) -> Envelope[Any]:
        files = outputs or (
            OutputFile(
                key=f"outputs/{self.user_id}/{self.job_id}/0.png",
                size=3,
                content_type="image/png",
                width=8,
                height=8,
            ),
        )
        data = JobCompleted(
            job_id=self.job_id,
            attempt=attempt,
            worker_id=worker_id,
            outputs=tuple(files),
            run_ms=run_ms,
            usage_units=1,
        )
        return self.derived(data, attempt=attempt)

    def failed(self, attempt: int = 1) -> Envelope[Any]:
        return self.derived(
            JobFailed(
                job_id=self.job_id,
                attempt=attempt,
                error_code="permanent_error",
                error_message="the model refused",
                retryable=False,
            )
        )

    def cancelled(self) -> Envelope[Any]:
        return self.derived(JobCancelled(job_id=self.job_id, reason="user"))

    def expired(self) -> Envelope[Any]:
        return self.derived(
            JobExpired(job_id=self.job_id, reason="queued too long", deadline=self._clock)
        )

    def rejected(self) -> Envelope[Any]:
        return self.derived(
            JobRejected(
                job_id=self.job_id, reason=RejectReason.INSUFFICIENT_CREDITS, detail="0 < 5"
            )
        )

    # -- the ledger ----------------------------------------------------------------------------
    def reserved(self, amount: int = 5) -> Envelope[Any]:
        return self.at(
            CreditsReserved(job_id=self.job_id, amount=amount, idempotency_key=f"r:{self.job_id}")
        )

    def settled(self, amount: int, released: int) -> Envelope[Any]:
        return self.at(
            CreditsSettled(
                job_id=self.job_id,
                amount=amount,
                released=released,
                idempotency_key=f"s:{self.job_id}",
            )
        )

    def released(self, amount: int = 5) -> Envelope[Any]:
        return self.at(
            CreditsReleased(
                job_id=self.job_id,
                amount=amount,
                reason="failed",
                idempotency_key=f"x:{self.job_id}",
            )
        )


def granted(user_id: str, amount: int) -> Envelope[Any]:
    return Envelope.wrap(
        CreditsGranted(amount=amount, reason="signup", idempotency_key=f"g:{user_id}"),
        user_id=user_id,
        source=SOURCE,
    )
