"""``GET /v1/jobs/{id}/events`` and ``GET /v1/events``: Server-Sent Events of the caller's jobs.

Each stream sends the stored lifecycle events (``id: <seq>``) and live progress
(``id: <seq>.<n>``). ``Last-Event-ID`` (the header ``EventSource`` sends when it reconnects,
or ``?last_event_id=``) resumes after the lifecycle event it names, replaying every one
since. Without it, a job's stream starts from the job's first event, and the stream of all
the caller's jobs from now. A job's stream ends after the job's terminal event; asked again
past that point it answers 204, which tells ``EventSource`` to stop reconnecting.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi import status as http_status

from api.events.auth import StreamCaller, StreamCallerDep
from api.events.hub import EventHub, Gone, Subscription
from api.events.ids import parse_event_id
from api.events.response import EventStreamResponse
from api.events.stream import LifecycleReader, StoredJobEvent, StreamOptions, event_stream
from api.jobs.downloads import sign_downloads
from api.jobs.reads import JobId, own_job
from api.problems import Problem, problem_responses
from api.settings import ApiSettings
from contracts import JobCompleted, JobPreview

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["events"])

_STREAM: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
        "description": "Server-Sent Events",
    },
    **problem_responses(400, 401, 422),
}
_PREVIEW: Final = JobPreview.wire_type()
_COMPLETED: Final = JobCompleted.wire_type()

LastEventIdHeader = Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)]
LastEventIdQuery = Annotated[
    str | None,
    Query(
        alias="last_event_id",
        max_length=64,
        description="Resume after this event id, as the ``Last-Event-ID`` header does.",
    ),
]


def _hub(request: Request) -> EventHub:
    hub: EventHub = request.app.state.event_hub
    return hub


async def _resume_point(hub: EventHub, header: str | None, query: str | None) -> int | None:
    given = header or query
    if not given:
        return None
    try:
        seq = parse_event_id(given).seq
    except ValueError as error:
        raise Problem(400, str(error), type_="invalid_event_id") from None
    if seq > await hub.latest_seq():
        raise Problem(400, "the event id is not one this stream issued", type_="invalid_event_id")
    return seq


def _links(settings: ApiSettings, user_id: str) -> Any:
    async def links(event: StoredJobEvent) -> dict[str, Any]:
        if event.type == _PREVIEW:
            keys = [event.data["preview_key"]]
        elif event.type == _COMPLETED:
            keys = [output["key"] for output in event.data["outputs"]]
        else:
            return {}
        signed = await sign_downloads(settings, user_id=user_id, job_id=event.job_id, keys=keys)
        expires = signed.expires_at.isoformat() if signed.expires_at else None
        return {"urls": dict(signed.urls), "urls_expire_at": expires}

    return links


def _open(
    request: Request,
    caller: StreamCaller,
    subscription: Subscription,
    *,
    start: int,
) -> EventStreamResponse:
    settings: ApiSettings = request.app.state.settings
    hub = _hub(request)
    reader = LifecycleReader(request.app.state.engine)
    options = StreamOptions(
        heartbeat_s=settings.reads.sse_heartbeat_s,
        retry_ms=settings.reads.sse_retry_ms,
        ends_at=caller.ends_at,
    )
    links = _links(settings, subscription.user_id)

    def chunks(gone: Gone) -> AsyncGenerator[bytes, None]:
        return event_stream(
            subscription, reader, start=start, options=options, links=links, gone=gone
        )

    return EventStreamResponse(
        chunks, subscription=subscription, on_close=lambda: hub.unsubscribe(subscription)
    )


@router.get(
    "/jobs/{job_id}/events",
    operation_id="jobs_events",
    response_class=EventStreamResponse,
    status_code=http_status.HTTP_200_OK,
    summary="Server-Sent Events of one job, ending after its terminal event",
    responses={
        **_STREAM,
        204: {"description": "The job ended before the given event id"},
        **problem_responses(404),
    },
)
async def job_events(
    job_id: JobId,
    request: Request,
    caller: StreamCallerDep,
    last_event_id: LastEventIdHeader = None,
    last_event_id_query: LastEventIdQuery = None,
) -> Response:
    hub = _hub(request)
    async with request.app.state.sessions() as session:
        await own_job(session, caller.user_id, job_id)
    start = await _resume_point(hub, last_event_id, last_event_id_query)
    if start is not None:
        ended_at = await LifecycleReader(request.app.state.engine).terminal_seq(job_id)
        if ended_at is not None and ended_at <= start:
            return Response(status_code=http_status.HTTP_204_NO_CONTENT)
    await hub.ensure_started()
    subscription = hub.subscribe(user_id=str(caller.user_id), job_id=job_id)
    return _open(request, caller, subscription, start=start or 0)


@router.get(
    "/events",
    operation_id="events_stream",
    response_class=EventStreamResponse,
    status_code=http_status.HTTP_200_OK,
    summary="Server-Sent Events of all the caller's jobs",
    responses=_STREAM,
)
async def all_events(
    request: Request,
    caller: StreamCallerDep,
    last_event_id: LastEventIdHeader = None,
    last_event_id_query: LastEventIdQuery = None,
) -> Response:
    hub = _hub(request)
    start = await _resume_point(hub, last_event_id, last_event_id_query)
    await hub.ensure_started()
    user_id = str(caller.user_id)
    if start is not None:
        subscription = hub.subscribe(user_id=user_id, job_id=None)
        return _open(request, caller, subscription, start=start)
    # From now: subscribed first, so an event committed after the read below is announced
    # to this stream, whose first read then takes it.
    subscription = hub.subscribe(user_id=user_id, job_id=None, lifecycle_due=False)
    try:
        start = await hub.latest_seq()
    except BaseException:
        hub.unsubscribe(subscription)
        raise
    return _open(request, caller, subscription, start=start)
