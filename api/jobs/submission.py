"""Submitting a job: checks, the row, then the event, acknowledged by the broker.

The row is committed before the event is sent, with the event's id, so that whatever dies
between the two, a retry with the same ``Idempotency-Key`` finds the row and re-sends the
very same event (consumers deduplicate on its id) instead of making a second job. Without
a key nothing can retry the send, so a failed send removes the row and the client is told.
The answer waits until the acknowledgement is recorded too (``emitted_at``).

A new submission asks the database nothing before its insert: the insert itself finds a
key that is taken (``ON CONFLICT DO NOTHING``), and only then is the earlier job read.
Rows are written by ``JobRecorder``, which puts concurrent submissions in one statement.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.principal import Caller
from api.jobs.backlog import open_jobs
from api.jobs.events import SOURCE, emit
from api.jobs.recorder import JobRecorder, NewJob
from api.jobs.spend import check_spend_cap, quote
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
from genstream.db.models import Job
from genstream.job_requests import requested_envelope as job_requested
from genstream.tracing import event_trace, tracer
from producers import EventProducer

__all__ = ["JobRequest", "Submitted", "requested_envelope", "submit"]

_tracer = tracer(__name__)
_LIMITED_TYPES: Final = frozenset({JobType.VIDEO_GENERATE, JobType.VIDEO_ENHANCE})


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A request that passed validation: typed input, checked URL, canonical hash."""

    job_type: JobType
    job_input: BaseModel
    stored_input: dict[str, Any]
    """``job_input`` as stored and sent: its JSON form."""
    webhook_url: str | None
    idempotency_key: str | None
    request_hash: str
    webhook_events: list[str] | None = None
    """The webhook events subscribed to; ``None``: the end alone."""
    metadata: dict[str, Any] | None = None
    end_user: str | None = None


@dataclass(frozen=True, slots=True)
class Submitted:
    job: Job
    replayed: bool
    """True when an earlier request with the same idempotency key made the job."""


def _job_id() -> str:
    return f"job_{uuid.uuid4().hex}"


def requested_envelope(job: Job) -> Envelope[JobRequested]:
    """The ``job.requested`` event of a job row, as the API emits it."""
    return job_requested(job, source=SOURCE)


async def submit(
    *,
    sessions: async_sessionmaker[AsyncSession],
    recorder: JobRecorder,
    producer: EventProducer,
    topic: TopicSpec,
    settings: ApiSettings,
    caller: Caller,
    request: JobRequest,
) -> Submitted:
    """Submits ``request`` for ``caller``, or answers for the job its idempotency key made.

    Raises ``Problem``: 404 and 422 for uploads, 422 ``plan_limit``, 429 ``queue_full`` past
    the plan's unfinished jobs, 409 for a key reused with another request, 503 when the
    broker does not acknowledge the event.

    Sessions are opened only where a step reads the database and closed before anything
    waits on ``recorder``: requests holding pooled connections while they wait for the
    recorder could leave it none.
    """
    key = request.idempotency_key
    try:
        media = await _admit(sessions, settings=settings, caller=caller, request=request)
        quoted = await _within_spend_cap(sessions, caller=caller, request=request, media=media)
        await open_jobs.check(sessions, user_id=caller.user_id, plan=Plan(caller.plan))
    except Problem:
        # A retry is answered with its job even where the request would no longer pass.
        earlier = await _by_key(sessions, caller.user_id, key) if key is not None else None
        if earlier is None:
            raise
        return await _replay(earlier, request, recorder, producer, topic, settings)
    with _tracer.start_as_current_span("job.submission.write") as span:
        # The job's events name this span: the processors' decision is its child.
        row = _new_job(caller.user_id, request, media, api_key_id=caller.api_key_id, quoted=quoted)
        span.set_attribute("genstream.job_id", row.id)
        if not await recorder.insert(row):
            assert key is not None  # only a key can be taken
            earlier = await _by_key(sessions, caller.user_id, key)
            assert earlier is not None  # rows with a key are never deleted
            return await _replay(earlier, request, recorder, producer, topic, settings)
        open_jobs.submitted(caller.user_id)
        job = _job_of(row, request)
        try:
            await emit(
                producer, topic, requested_envelope(job), timeout_s=settings.jobs.send_timeout_s
            )
        except Problem:
            if key is None:
                async with sessions() as session:
                    await session.execute(delete(Job).where(Job.id == job.id))
                    await session.commit()
            raise
        await recorder.mark_emitted(job.id)
    return Submitted(job=job, replayed=False)


async def _admit(
    sessions: async_sessionmaker[AsyncSession],
    *,
    settings: ApiSettings,
    caller: Caller,
    request: JobRequest,
) -> MediaInfo | None:
    """Checks the uploads and plan limits; returns the measurements of the main upload."""
    media: MediaInfo | None = None
    plan = Plan(caller.plan)
    uses = uploads_of(request.job_input)
    if uses:
        async with sessions() as session:
            for use in uses:
                measured = await usable_upload(
                    session,
                    settings=settings,
                    user_id=caller.user_id,
                    upload_id=use.upload_id,
                    kind=use.kind,
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


async def _within_spend_cap(
    sessions: async_sessionmaker[AsyncSession],
    *,
    caller: Caller,
    request: JobRequest,
    media: MediaInfo | None,
) -> int | None:
    """The job's quote, for a caller with an API key that has a cap (which counts it); 429
    past it. Keys without a cap ask nothing: the submission path stays free of queries."""
    if caller.api_key_id is None or caller.daily_credit_cap is None:
        return None
    cost = quote(request.job_type, request.job_input, media)
    await check_spend_cap(sessions, api_key_id=caller.api_key_id, cost=cost)
    return cost


async def _by_key(
    sessions: async_sessionmaker[AsyncSession], user_id: uuid.UUID, key: str
) -> Job | None:
    async with sessions() as session:
        found: Job | None = await session.scalar(
            select(Job).where(Job.user_id == user_id, Job.idempotency_key == key)
        )
    return found


def _new_job(
    user_id: uuid.UUID,
    request: JobRequest,
    media: MediaInfo | None,
    *,
    api_key_id: uuid.UUID | None = None,
    quoted: int | None = None,
) -> NewJob:
    return NewJob(
        id=_job_id(),
        user_id=user_id,
        type=request.job_type.value,
        input=json.dumps(request.stored_input),
        media=media.model_dump_json() if media is not None else None,
        webhook_url=request.webhook_url,
        idempotency_key=request.idempotency_key,
        request_hash=request.request_hash,
        event_id=str(uuid.uuid4()),
        event_trace=event_trace(new_traceparent()),
        created_at=datetime.now(UTC),
        webhook_events=_json_or_none(request.webhook_events),
        metadata=_json_or_none(request.metadata),
        end_user=request.end_user,
        api_key_id=api_key_id,
        credits_quoted=quoted,
    )


def _json_or_none(value: object) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _job_of(row: NewJob, request: JobRequest) -> Job:
    """The row ``row`` made, as the database holds it now."""
    return Job(
        id=row.id,
        user_id=row.user_id,
        type=row.type,
        status=JobStatus.PENDING.value,
        input=request.stored_input,
        media=json.loads(row.media) if row.media is not None else None,
        webhook_url=row.webhook_url,
        idempotency_key=row.idempotency_key,
        request_hash=row.request_hash,
        event_id=row.event_id,
        event_trace=row.event_trace,
        created_at=row.created_at,
        updated_at=row.created_at,
        webhook_events=request.webhook_events,
        metadata_=request.metadata,
        end_user=request.end_user,
        api_key_id=row.api_key_id,
        credits_quoted=row.credits_quoted,
    )


async def _replay(
    job: Job,
    request: JobRequest,
    recorder: JobRecorder,
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
        await recorder.mark_emitted(job.id)
    return Submitted(job=job, replayed=True)
