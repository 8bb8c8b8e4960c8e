"""What one event stream sends: stored lifecycle events after its position, live progress,
and heartbeats while there is neither.

Lifecycle events are stored in ``job_events`` in ``seq`` order; the projection commits them
in that order, so a stream that has sent up to some ``seq`` can never later meet a smaller
one, and resuming after it loses nothing. A stream reads from the database only what was
stored before it joined its user's feed; everything after, the feed hands it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from api.events.ids import StreamPosition, comment, frame
from api.events.lifecycle import PAGE, LifecycleEvent, LifecycleReader
from api.events.metrics import EVENTS_SENT
from api.events.subscription import Gone, Subscription
from contracts import Envelope
from genstream.tracing import tracer

__all__ = ["StreamOptions", "event_stream"]

_tracer = tracer(__name__)


@dataclass(frozen=True, slots=True)
class StreamOptions:
    heartbeat_s: float
    retry_ms: int
    ends_at: float | None
    """``time.monotonic()`` at which the caller's credentials expire and the stream ends."""


def _progress_frame(envelope: Envelope[Any], position: StreamPosition) -> bytes:
    data = {
        "id": envelope.id,
        "type": envelope.type,
        "job_id": envelope.subject,
        "time": envelope.time.isoformat(),
        "data": envelope.data.model_dump(mode="json"),
    }
    EVENTS_SENT.labels("progress").inc()
    return frame(event="job.progress", data=data, event_id=position.event_id())


async def _history(
    subscription: Subscription, reader: LifecycleReader, start: int
) -> AsyncGenerator[LifecycleEvent, None]:
    """The stored events after ``start`` that the feed will not hand the stream."""
    seq = start
    while seq < subscription.handed_after:
        events = await reader.after(
            user_id=subscription.user_id, job_id=subscription.job_id, seq=seq, reading="history"
        )
        for event in events:
            yield event
            seq = event.seq
        if len(events) < PAGE:
            return


def _delivered_end(event: LifecycleEvent) -> None:
    """A span, in the stream's request's trace, for the job's end handed to the client."""
    span = _tracer.start_span("sse.job_end")
    span.set_attribute("genstream.job_id", event.job_id)
    span.set_attribute("genstream.seq", event.seq)
    span.end()


def _ends(subscription: Subscription, event: LifecycleEvent) -> bool:
    """A one-job stream ends after the job's terminal event."""
    return subscription.job_id is not None and event.terminal


async def event_stream(
    subscription: Subscription,
    reader: LifecycleReader,
    *,
    start: int,
    options: StreamOptions,
    gone: Gone,
) -> AsyncGenerator[bytes, None]:
    """The stream's bytes; a one-job stream ends after the job's terminal event.

    It ends too when ``gone`` (which waits on the client's connection) returns, and when
    the client overflows its buffer.
    """
    position = StreamPosition(start)
    yield f"retry: {options.retry_ms}\n".encode() + comment("stream open")
    # Read alone first; then what the feed handed the stream, meanwhile and after.
    async with aclosing(_history(subscription, reader, start)) as history:
        async for event in history:
            EVENTS_SENT.labels("lifecycle").inc()
            yield event.frame
            position = StreamPosition(event.seq)
            if _ends(subscription, event):
                _delivered_end(event)
                return
    while not subscription.overflowed:
        for event in subscription.take_lifecycle():
            if event.seq <= position.seq:
                continue  # sent already, from the stream's own read
            EVENTS_SENT.labels("lifecycle").inc()
            yield event.frame
            position = StreamPosition(event.seq)
            if _ends(subscription, event):
                _delivered_end(event)
                return
        for envelope in subscription.take_progress():
            position = StreamPosition(position.seq, position.progress + 1)
            yield _progress_frame(envelope, position)
        wait_s = options.heartbeat_s
        if options.ends_at is not None:
            wait_s = min(wait_s, options.ends_at - time.monotonic())
            if wait_s <= 0:
                return
        woke = await subscription.wait(wait_s, gone)
        if woke == "gone":
            return
        if woke == "quiet":
            yield comment("heartbeat")
