"""``/v1/jobs``: submit a job, ask to cancel it (``api.jobs.reads`` serves the reads)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Request, Response, status

from api.auth.principal import CurrentCaller, CurrentUser
from api.deps import SessionDep, SettingsDep
from api.jobs.deletion import delete_job
from api.jobs.events import SOURCE, ProducerDep, emit, get_producer, requested_topic
from api.jobs.prefer import wait_seconds
from api.jobs.reads import JobId, job_public, own_job
from api.jobs.schemas import JobCancelling, JobCreate, JobLinks, JobPublic, JobSubmitted
from api.jobs.submission import JobRequest, submit
from api.jobs.validation import (
    InvalidRequestError,
    check_events_filter,
    check_metadata,
    check_webhook_url,
    parse_input,
    request_hash,
)
from api.jobs.waiting import JobWaiters
from api.problems import Problem, problem_responses
from api.settings import ApiSettings
from contracts import TERMINAL_STATUSES, Envelope, JobCancelRequested, JobStatus
from genstream.db.models import Job

router = APIRouter(prefix="/v1", tags=["jobs"])

_TERMINAL: Final = frozenset(status.value for status in TERMINAL_STATUSES)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[!-~]+$",
        description="Makes retries safe: the same key and request give the same job.",
    ),
]

Prefer = Annotated[
    str | None,
    Header(
        alias="Prefer",
        max_length=200,
        description="`wait` or `wait=N` (seconds, at most 60): answer 201 with the finished "
        "job if it ends within that time, else 202 as without it (RFC 7240). "
        "`Preference-Applied` tells the wait that was granted.",
    ),
]


@router.post(
    "/jobs",
    operation_id="jobs_submit",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobSubmitted,
    summary="Submit a job",
    responses={
        200: {
            "model": JobSubmitted,
            "description": "The job an earlier request with this key made",
        },
        201: {
            "model": JobPublic,
            "description": "With `Prefer: wait`: the job, which ended within the wait",
        },
        **problem_responses(400, 401, 404, 409, 413, 422, 429, 503),
    },
)
async def submit_job(
    body: JobCreate,
    caller: CurrentCaller,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    prefer: Prefer = None,
) -> Response:
    # The busiest route takes its collaborators from the app itself: each FastAPI
    # dependency costs every request a resolution, and the session is opened only by the
    # rare steps that read the database.
    state = request.app.state
    settings: ApiSettings = state.settings
    producer = await get_producer(request)
    errors: list[dict[str, Any]] = []
    try:
        job_input = parse_input(
            body.type, body.input, synthetic_enabled=settings.jobs.synthetic_enabled
        )
    except InvalidRequestError as error:
        errors += error.errors
    webhook_url = body.webhook_url
    if webhook_url is not None:
        try:
            check_webhook_url(webhook_url, https_only=settings.environment == "production")
        except InvalidRequestError as error:
            errors += error.errors
    events = body.webhook_events_filter
    if events is not None:
        errors += check_events_filter(events, webhook_url)
    if body.metadata is not None:
        errors += check_metadata(body.metadata)
    if errors:
        raise Problem(422, "the job request is invalid", type_="invalid_input", errors=errors)
    subscribed = [event.value for event in events] if events else None
    options = {
        "webhook_events_filter": subscribed,
        "metadata": body.metadata,
        "end_user": body.end_user,
    }
    job_request = JobRequest(
        job_type=body.type,
        job_input=job_input,
        stored_input=job_input.model_dump(mode="json"),
        webhook_url=webhook_url,
        idempotency_key=idempotency_key,
        request_hash=request_hash(body.type, job_input, webhook_url, options),
        webhook_events=subscribed,
        metadata=body.metadata,
        end_user=body.end_user,
    )
    submitted = await submit(
        sessions=state.sessions,
        recorder=state.job_recorder,
        producer=producer,
        topic=requested_topic(settings.jobs),
        settings=settings,
        caller=caller,
        request=job_request,
    )
    wait_s = wait_seconds(prefer, longest_s=settings.jobs.wait_max_s)
    headers: dict[str, str] = {}
    if wait_s is not None and not submitted.replayed:
        waiters: JobWaiters = state.job_waiters
        ended = await waiters.wait(
            user_id=str(caller.user_id), job_id=submitted.job.id, timeout_s=wait_s
        )
        if ended is not None:
            headers["Preference-Applied"] = f"wait={wait_s}"
        if ended:
            return await _finished_response(request, submitted.job.id, headers)
    return _submitted_response(
        submitted.job.id, submitted.job.status, replayed=submitted.replayed, headers=headers
    )


def _submitted_response(
    job_id: str, job_status: str, *, replayed: bool, headers: dict[str, str] | None = None
) -> Response:
    # Serialized here, once: returned as a model, FastAPI would validate it again first.
    links = JobLinks.of(job_id)
    submitted = JobSubmitted(id=job_id, status=JobStatus(job_status), links=links)
    return Response(
        submitted.model_dump_json(by_alias=True),
        status_code=status.HTTP_200_OK if replayed else status.HTTP_202_ACCEPTED,
        headers={"Location": links.self_, **(headers or {})},
        media_type="application/json",
    )


async def _finished_response(request: Request, job_id: str, headers: dict[str, str]) -> Response:
    state = request.app.state
    async with state.sessions() as session:
        job = await session.get(Job, job_id)
        assert job is not None  # ended jobs are never deleted
        public = await job_public(session, state.settings, job)
    return Response(
        public.model_dump_json(by_alias=True),
        status_code=status.HTTP_201_CREATED,
        headers={"Location": JobLinks.of(job_id).self_, **headers},
        media_type="application/json",
    )


@router.delete(
    "/jobs/{job_id}",
    operation_id="jobs_delete",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a finished job: its outputs and inputs leave storage, the job every read",
    responses=problem_responses(401, 404, 409, 422, 503),
)
async def delete_finished_job(
    job_id: JobId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> Response:
    await delete_job(session, settings, await own_job(session, user.id, job_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/jobs/{job_id}/cancel",
    operation_id="jobs_cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobCancelling,
    summary="Ask to cancel a job; it ends as cancelled unless it finishes first",
    responses=problem_responses(401, 404, 409, 422, 503),
)
async def cancel_job(
    job_id: JobId,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    producer: ProducerDep,
) -> JobCancelling:
    job = await own_job(session, user.id, job_id)
    if job.status in _TERMINAL:
        raise Problem(409, f"the job is already {job.status}", type_="job_finished")
    if job.emitted_at is None:
        # A cancel must not overtake a submission the broker has not acknowledged yet.
        raise Problem(
            409,
            "the job's submission is not confirmed yet; repeat it with the same "
            "Idempotency-Key, then cancel",
            type_="job_not_submitted",
        )
    envelope = Envelope.wrap(
        JobCancelRequested(job_id=job.id, reason="user"), user_id=str(user.id), source=SOURCE
    )
    await emit(
        producer,
        requested_topic(settings.jobs),
        envelope,
        timeout_s=settings.jobs.send_timeout_s,
    )
    if job.cancel_requested_at is None:
        job.cancel_requested_at = datetime.now(UTC)
        await session.commit()
    return JobCancelling(id=job.id)
