"""Submitting a job: checks, the row, then the event, acknowledged by the broker.

The row is committed before the event is sent, with the event's id, so that whatever dies
between the two, a retry with the same ``Idempotency-Key`` finds the row and re-sends the
very same event (consumers deduplicate on its id) instead of making a second job. Without
a key nothing can retry the send, so a failed send removes the row and the client is told.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from pydantic import BaseModel
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.jobs.events import SOURCE, emit
from api.jobs.validation import plan_limit_violations, uploads_of
from api.problems import Problem
from api.settings import ApiSettings
from api.uploads import usable_upload
from contracts import (
    Envelope,
    JobRequested,
    JobStatus,
    JobType,
    MediaInfo,
    Plan,
    TopicSpec,
    load_catalog,
    new_traceparent,
)
from genstream.db.models import Job, User
from producers import EventProducer

__all__ = ["JobRequest", "Submitted", "requested_envelope", "submit"]

_LIMITED_TYPES: Final = frozenset({JobType.VIDEO_GENERATE, JobType.VIDEO_ENHANCE})


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A request that passed validation: typed input, checked URL, canonical hash."""

    job_type: JobType
    job_input: BaseModel
    webhook_url: str | None
    idempotency_key: str | None
    request_hash: str


@dataclass(frozen=True, slots=True)
class Submitted:
    job: Job
    replayed: bool
    """True when an earlier request with the same idempotency key made the job."""


def _job_id() -> str:
    return f"job_{uuid.uuid4().hex}"


def requested_envelope(job: Job) -> Envelope[JobRequested]:
    """The ``job.requested`` event of a job row; the same event each time it is built."""
    data = JobRequested.model_validate(
        {
            "job_id": job.id,
            "job_type": job.type,
            "input": job.input,
            "idempotency_key": job.idempotency_key,
            "webhook_url": job.webhook_url,
            "requested_at": job.created_at,
            "media": job.media,
        }
    )
    return Envelope.wrap(
        data,
        user_id=str(job.user_id),
        source=SOURCE,
        event_id=job.event_id,
        time=job.created_at,
        trace=job.event_trace,
    )


async def submit(
    session: AsyncSession,
    *,
    producer: EventProducer,
    topic: TopicSpec,
    settings: ApiSettings,
    user: User,
    request: JobRequest,
) -> Submitted:
    """Submits ``request`` for ``user``, or answers for the job its idempotency key made.

    Raises ``Problem``: 404 and 422 for uploads, 422 ``plan_limit``, 409 for a key reused
    with another request, 503 when the broker does not acknowledge the event.
    """
    user_id = user.id
    if request.idempotency_key is not None:
        earlier = await _by_key(session, user_id, request.idempotency_key)
        if earlier is not None:
            return await _replay(session, earlier, request, producer, topic, settings)
    media = await _admit(session, settings=settings, user=user, request=request)
    job = await _insert(session, user_id=user_id, request=request, media=media)
    if job is None:
        # A concurrent request with the same key inserted first.
        assert request.idempotency_key is not None
        earlier = await _by_key(session, user_id, request.idempotency_key)
        assert earlier is not None
        return await _replay(session, earlier, request, producer, topic, settings)
    try:
        await emit(producer, topic, requested_envelope(job), timeout_s=settings.jobs.send_timeout_s)
    except Problem:
        if request.idempotency_key is None:
            await session.execute(delete(Job).where(Job.id == job.id))
            await session.commit()
        raise
    await _mark_emitted(session, job)
    return Submitted(job=job, replayed=False)


async def _admit(
    session: AsyncSession, *, settings: ApiSettings, user: User, request: JobRequest
) -> MediaInfo | None:
    """Checks the uploads and plan limits; returns the measurements of the main upload."""
    media: MediaInfo | None = None
    plan = Plan(user.plan)
    for use in uploads_of(request.job_input):
        measured = await usable_upload(
            session, settings=settings, user_id=user.id, upload_id=use.upload_id, kind=use.kind
        )
        if use.primary:
            media = measured
    if request.job_type in _LIMITED_TYPES:
        limits = load_catalog().limits(plan)
        violations = plan_limit_violations(request.job_input, plan=plan, limits=limits, media=media)
        if violations:
            raise Problem(
                422,
                "; ".join(violations),
                type_="plan_limit",
                title="Beyond the plan's limits",
                plan=plan.value,
                violations=violations,
            )
    return media


async def _by_key(session: AsyncSession, user_id: uuid.UUID, key: str) -> Job | None:
    found: Job | None = await session.scalar(
        select(Job).where(Job.user_id == user_id, Job.idempotency_key == key)
    )
    return found


async def _insert(
    session: AsyncSession, *, user_id: uuid.UUID, request: JobRequest, media: MediaInfo | None
) -> Job | None:
    """The new row, committed; ``None`` when the user's idempotency key is taken."""
    now = datetime.now(UTC)
    statement = (
        insert(Job)
        .values(
            id=_job_id(),
            user_id=user_id,
            type=request.job_type.value,
            status=JobStatus.PENDING.value,
            input=request.job_input.model_dump(mode="json"),
            media=media.model_dump(mode="json") if media is not None else None,
            webhook_url=request.webhook_url,
            idempotency_key=request.idempotency_key,
            request_hash=request.request_hash,
            event_id=str(uuid.uuid4()),
            event_trace=new_traceparent(),
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[Job.user_id, Job.idempotency_key])
        .returning(Job)
    )
    job: Job | None = await session.scalar(statement)
    await session.commit()
    return job


async def _replay(
    session: AsyncSession,
    job: Job,
    request: JobRequest,
    producer: EventProducer,
    topic: TopicSpec,
    settings: ApiSettings,
) -> Submitted:
    if job.request_hash != request.request_hash:
        raise Problem(
            409,
            "idempotency key reused with a different request",
            type_="idempotency_conflict",
            job_id=job.id,
        )
    if job.emitted_at is None:
        # The first attempt died or failed before the broker acknowledged its event.
        await emit(producer, topic, requested_envelope(job), timeout_s=settings.jobs.send_timeout_s)
        await _mark_emitted(session, job)
    return Submitted(job=job, replayed=True)


async def _mark_emitted(session: AsyncSession, job: Job) -> None:
    await session.execute(
        update(Job)
        .where(Job.id == job.id, Job.emitted_at.is_(None))
        .values(emitted_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )
    await session.commit()
