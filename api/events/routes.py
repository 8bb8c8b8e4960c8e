"""``GET /v1/jobs/{id}/events`` and ``GET /v1/events``: Server-Sent Events of the caller's jobs.

Each stream sends the stored lifecycle events (``id: <seq>``) and live progress
(``id: <seq>.<n>``). ``Last-Event-ID`` (the header ``EventSource`` sends when it reconnects,
or ``?last_event_id=``) resumes after the lifecycle event it names, replaying every one
since. Without it, a job's stream starts from the job's first event, and the stream of all
the caller's jobs from now. A job's stream ends after the job's terminal event; asked again
past that point it answers 204, which tells ``EventSource`` to stop reconnecting.

A user holds at most ``reads.sse_streams_per_user`` streams open on one process, and an API
key ``reads.sse_streams_per_api_key``; past either, 429 with ``Retry-After``. A stream gives
its slot back when it closes. Everything a stream reads, it reads with the streams' own
engine (``create_app``'s ``stream_engine``), never with the connections of other requests.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi import status as http_status
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.events.auth import StreamCaller, StreamCallerDep
from api.events.hub import EventHub
from api.events.ids import parse_event_id
from api.events.response import EventStreamResponse
from api.events.slots import Refusal, Slot, refused
from api.events.stream import StreamOptions, event_stream
from api.events.subscription import Gone, Subscription
from api.jobs.reads import JobId, own_job
from api.problems import Problem, problem_responses
from api.settings import ApiSettings

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["events"])

_STREAM: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
        "description": "Server-Sent Events",
    },
    **problem_responses(
        400, 401, 422, described={429: "As many streams open as the user or API key may hold"}
    ),
}

LastEventIdHeader = Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)]
LastEventIdQuery = Annotated[
    str | None,
    Query(
        alias="last_event_id",
        max_length=64,
        description="Resume after this event id, as the ``Last-Event-ID`` header does.",
    ),
]


@contextmanager
def _undone(undo: Callable[[], None]) -> Iterator[None]:
    """Runs ``undo`` when the block fails (or is cancelled), and lets the failure go on."""
    try:
        yield
    except BaseException:
        undo()
        raise


def _hub(request: Request) -> EventHub:
    hub: EventHub = request.app.state.event_hub
    return hub


def _slot(request: Request, caller: StreamCaller) -> Slot:
    """The caller's slot for one more stream; 429 when their streams fill their cap."""
    api_key_id = None if caller.api_key_id is None else str(caller.api_key_id)
    taken = _hub(request).slots.take(user_id=str(caller.user_id), api_key_id=api_key_id)
    if isinstance(taken, Refusal):
        settings: ApiSettings = request.app.state.settings
        raise refused(taken, retry_after_s=settings.reads.sse_refused_retry_after_s)
    return taken


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


def _open(
    request: Request,
    caller: StreamCaller,
    subscription: Subscription,
    slot: Slot,
    *,
    start: int,
) -> EventStreamResponse:
    settings: ApiSettings = request.app.state.settings
    hub = _hub(request)
    options = StreamOptions(
        heartbeat_s=settings.reads.sse_heartbeat_s,
        retry_ms=settings.reads.sse_retry_ms,
        ends_at=caller.ends_at,
    )

    def chunks(gone: Gone) -> AsyncGenerator[bytes, None]:
        return event_stream(subscription, hub.reader, start=start, options=options, gone=gone)

    def closed() -> None:
        hub.unsubscribe(subscription)
        slot.release()

    return EventStreamResponse(chunks, subscription=subscription, on_close=closed)


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
    slot = _slot(request, caller)
    with _undone(slot.release):
        sessions: async_sessionmaker[AsyncSession] = request.app.state.stream_sessions
        async with sessions() as session:
            await own_job(session, caller.user_id, job_id)
        start = await _resume_point(hub, last_event_id, last_event_id_query)
        if start is not None:
            ended_at = await hub.reader.terminal_seq(job_id)
            if ended_at is not None and ended_at <= start:
                slot.release()
                return Response(status_code=http_status.HTTP_204_NO_CONTENT)
        await hub.ensure_started()
        subscription = hub.subscribe(user_id=str(caller.user_id), job_id=job_id)
    return _open(request, caller, subscription, slot, start=start or 0)


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
    slot = _slot(request, caller)
    with _undone(slot.release):
        start = await _resume_point(hub, last_event_id, last_event_id_query)
        await hub.ensure_started()
        subscription = hub.subscribe(user_id=str(caller.user_id), job_id=None)
        if start is None:
            # From now: subscribed first, so an event stored after the read below is handed
            # to this stream, and one stored before it is not its to send.
            with _undone(lambda: hub.unsubscribe(subscription)):
                start = await hub.latest_seq()
    return _open(request, caller, subscription, slot, start=start)
