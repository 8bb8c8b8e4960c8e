"""``GET /v1/jobs`` and ``GET /v1/jobs/{id}``: jobs as the read model knows them."""

from __future__ import annotations

import posixpath
import re
import uuid
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime, BeforeValidator, StringConstraints
from sqlalchemy import ColumnElement, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.principal import CurrentUser
from api.deps import SessionDep, SettingsDep
from api.jobs.downloads import sign_downloads
from api.jobs.queue import estimate_queue
from api.jobs.schemas import (
    JobError,
    JobLinks,
    JobPage,
    JobPublic,
    JobSummary,
    OutputPublic,
    PreviewPublic,
    QueuePublic,
)
from api.jobs.typed import EndUser
from api.pagination import decode_time_cursor, encode_time_cursor
from api.problems import Problem, not_found, problem_responses
from api.settings import ApiSettings
from contracts import TERMINAL_STATUSES, JobStatus, JobType
from genstream.db.models import Job

__all__ = ["JobId", "job_public", "own_job", "router"]

_NUMBER: Final = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")


def _not_a_number(value: Any) -> Any:
    # Left to itself, pydantic reads "376" as seconds since 1970; the parameter is documented
    # as an RFC 3339 date-time, and a client sending a number is most likely mistaken.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("an RFC 3339 date-time with its offset is expected, not a number")
    return value


MetadataFilter = Annotated[
    str, StringConstraints(pattern=r"^[^:\x00-\x1f\x7f]{1,64}:[^\x00-\x1f\x7f]{0,512}$")
]
"""``key:value``: the key (no colon) and a string value of the job's metadata."""

Instant = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]
"""A query's date-time: RFC 3339 with an offset, never a count of seconds."""

router = APIRouter(prefix="/v1", tags=["jobs"])

JobId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[!-~]+$")]
"""Printable ASCII, as every job id is: anything else (NUL above all) never reaches a query."""


async def own_job(session: AsyncSession, user_id: uuid.UUID, job_id: str) -> Job:
    """The caller's job; 404 alike for a job that does not exist and one of someone else."""
    job = await session.get(Job, job_id)
    # A deleted job is gone for its owner too; only the lifecycle remembers it.
    if job is None or job.user_id != user_id or job.deleted_at is not None:
        raise not_found("job")
    return job


def _error(job: Job) -> JobError | None:
    if job.error_code is None and job.error is None:
        return None
    return JobError(code=job.error_code, message=job.error)


def _shown_status(job: Job) -> str:
    """``cancelling`` from the moment a cancellation is acknowledged until the job ends."""
    if job.cancel_requested_at is not None and not JobStatus(job.status).is_terminal:
        return JobStatus.CANCELLING.value
    return job.status


def _shown_in(statuses: list[JobStatus]) -> ColumnElement[bool]:
    """Jobs whose shown status (``_shown_status``) is one of ``statuses``."""
    ended = [s.value for s in TERMINAL_STATUSES]
    stored = [s.value for s in statuses if s is not JobStatus.CANCELLING]
    shown = Job.status.in_(stored) & (Job.cancel_requested_at.is_(None) | Job.status.in_(ended))
    if JobStatus.CANCELLING in statuses:
        shown = shown | (Job.cancel_requested_at.is_not(None) & Job.status.not_in(ended))
    return shown


def _summary_fields(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "type": JobType(job.type),
        "status": _shown_status(job),
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "tier": job.tier,
        "finished_at": job.finished_at,
        "error": _error(job),
        "credits_charged": job.credits_charged,
        "metadata": job.metadata_,
        "end_user": job.end_user,
        "links": JobLinks.of(job.id),
    }


@router.get(
    "/jobs",
    operation_id="jobs_list",
    response_model=JobPage,
    summary="The caller's jobs, newest first",
    responses=problem_responses(400, 401, 422),
)
async def list_jobs(
    user: CurrentUser,
    session: SessionDep,
    status: Annotated[
        list[JobStatus] | None, Query(description="Only jobs in these statuses (repeatable).")
    ] = None,
    job_type: Annotated[
        list[JobType] | None,
        Query(alias="type", description="Only jobs of these types (repeatable)."),
    ] = None,
    created_after: Annotated[
        Instant | None, Query(description="Jobs created at or after this instant.")
    ] = None,
    created_before: Annotated[
        Instant | None, Query(description="Jobs created before this instant.")
    ] = None,
    end_user: Annotated[
        EndUser | None, Query(description="Only jobs submitted for this end user.")
    ] = None,
    metadata: Annotated[
        list[MetadataFilter] | None,
        Query(
            description="Only jobs whose metadata has this `key:value` (a string value; "
            "repeatable, all must match)."
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> JobPage:
    if created_after is not None and created_before is not None and created_after >= created_before:
        raise Problem(
            422,
            "created_after must be earlier than created_before",
            type_="invalid_filter",
            title="Invalid filter",
        )
    query = select(Job).where(Job.user_id == user.id, Job.deleted_at.is_(None))
    if end_user is not None:
        query = query.where(Job.end_user == end_user)
    if metadata:
        pairs = dict(item.split(":", 1) for item in metadata)
        query = query.where(Job.metadata_.contains(pairs))
    if status:
        query = query.where(_shown_in(status))
    if job_type:
        query = query.where(Job.type.in_([t.value for t in job_type]))
    if created_after is not None:
        query = query.where(Job.created_at >= created_after)
    if created_before is not None:
        query = query.where(Job.created_at < created_before)
    if cursor is not None:
        at, job_id = decode_time_cursor(cursor)
        query = query.where(tuple_(Job.created_at, Job.id) < tuple_(at, job_id))
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    rows = (await session.scalars(query)).all()
    page = rows[:limit]
    last = page[-1] if len(rows) > limit else None
    return JobPage(
        jobs=[JobSummary(**_summary_fields(job)) for job in page],
        next_cursor=encode_time_cursor(last.created_at, last.id) if last else None,
    )


@router.get(
    "/jobs/{job_id}",
    operation_id="jobs_get",
    response_model=JobPublic,
    summary="A job of the caller's: its state, outputs, preview and place in the queue",
    responses=problem_responses(401, 404, 422),
)
async def get_job(
    job_id: JobId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> JobPublic:
    return await job_public(session, settings, await own_job(session, user.id, job_id))


async def job_public(session: AsyncSession, settings: ApiSettings, job: Job) -> JobPublic:
    """The job as ``GET /v1/jobs/{id}`` shows it: download links signed, queue estimated."""
    outputs = job.outputs or []
    preview = job.preview
    kept = job.outputs_expired_at is None
    keys = [output["key"] for output in outputs if kept] + (
        [preview["key"]] if preview and kept else []
    )
    signed = await sign_downloads(settings, user_id=str(job.user_id), job_id=job.id, keys=keys)
    queue = None
    if job.status == JobStatus.QUEUED and job.tier is not None and job.queued_at is not None:
        estimate = await estimate_queue(
            session,
            settings.reads,
            job_id=job.id,
            job_type=JobType(job.type),
            tier=job.tier,
            queued_at=job.queued_at,
            job_input=job.input,
            media=job.media,
        )
        queue = QueuePublic(
            position=estimate.position,
            workers=estimate.workers,
            median_run_s=estimate.median_run_s,
            estimated_start_s=estimate.estimated_start_s,
            eta_s=estimate.eta_s,
            run_s=estimate.run_s,
            same_tier_ahead=estimate.same_tier_ahead,
        )
    return JobPublic(
        **_summary_fields(job),
        input=job.input,
        attempt=job.attempt,
        worker_id=job.worker_id,
        queued_at=job.queued_at,
        started_at=job.started_at,
        run_ms=job.run_ms,
        credits_reserved=job.credits_reserved,
        outputs=[
            OutputPublic(
                name=posixpath.basename(output["key"]),
                size=output["size"],
                content_type=output["content_type"],
                blurhash=output.get("blurhash"),
                duration_s=output.get("duration_s"),
                width=output.get("width"),
                height=output.get("height"),
                url=signed.urls.get(output["key"]),
            )
            for output in outputs
        ],
        preview=None
        if preview is None
        else PreviewPublic(
            content_type=preview["content_type"],
            blurhash=preview.get("blurhash"),
            attempt=preview["attempt"],
            step=preview["step"],
            url=signed.urls.get(preview["key"]),
        ),
        queue=queue,
        urls_expire_at=signed.expires_at,
        webhook_events_filter=job.webhook_events,
        outputs_expired_at=job.outputs_expired_at,
    )
