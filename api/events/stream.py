"""What one event stream sends: stored lifecycle events after its position, live progress,
and heartbeats while there is neither.

Lifecycle events are read from ``job_events`` in ``seq`` order; the projection commits them
in that order, so a stream that has sent up to some ``seq`` can never later meet a smaller
one, and resuming after it loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.events.hub import Gone, Subscription
from api.events.ids import StreamPosition, comment, frame
from api.events.metrics import EVENTS_SENT
from api.projection.jobs import TERMINAL_TYPES
from contracts import Envelope
from contracts.event import split_wire_type
from genstream.db.read_model import JobEventRow

__all__ = ["LifecycleReader", "StoredJobEvent", "StreamOptions", "event_stream"]

_PAGE: Final = 200


@dataclass(frozen=True, slots=True)
class StoredJobEvent:
    seq: int
    event_id: str
    job_id: str
    type: str
    time: datetime
    data: dict[str, Any]


class LifecycleReader:
    """Reads a user's stored job events; each call takes a pooled connection briefly."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def after(
        self, *, user_id: str, job_id: str | None, seq: int, limit: int = _PAGE
    ) -> list[StoredJobEvent]:
        table = JobEventRow
        query = (
            select(table.seq, table.event_id, table.job_id, table.type, table.time, table.data)
            .where(table.user_id == user_id, table.seq > seq)
            .order_by(table.seq)
            .limit(limit)
        )
        if job_id is not None:
            query = query.where(table.job_id == job_id)
        async with self._engine.connect() as connection:
            rows = await connection.execute(query)
            return [StoredJobEvent(*row) for row in rows]

    async def terminal_seq(self, job_id: str) -> int | None:
        """Where the job's first terminal event is stored; ``None`` while it runs."""
        async with self._engine.connect() as connection:
            found = await connection.scalar(
                select(JobEventRow.seq)
                .where(JobEventRow.job_id == job_id, JobEventRow.type.in_(TERMINAL_TYPES))
                .order_by(JobEventRow.seq)
                .limit(1)
            )
        return None if found is None else int(found)


Links = Callable[[StoredJobEvent], Awaitable[dict[str, Any]]]
"""Extra fields for a lifecycle event (download URLs of its files)."""


@dataclass(frozen=True, slots=True)
class StreamOptions:
    heartbeat_s: float
    retry_ms: int
    ends_at: float | None
    """``time.monotonic()`` at which the caller's credentials expire and the stream ends."""


def event_name(wire_type: str) -> str:
    """``genstream.job.completed.v1`` → ``job.completed``."""
    parts = split_wire_type(wire_type)
    name = parts[0] if parts else wire_type
    return name.removeprefix("genstream.")


async def _lifecycle_frame(event: StoredJobEvent, links: Links) -> bytes:
    data = {
        "id": event.event_id,
        "type": event.type,
        "job_id": event.job_id,
        "time": event.time.isoformat(),
        "data": event.data,
        **await links(event),
    }
    EVENTS_SENT.labels("lifecycle").inc()
    return frame(event=event_name(event.type), data=data, event_id=str(event.seq))


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


async def event_stream(
    subscription: Subscription,
    reader: LifecycleReader,
    *,
    start: int,
    options: StreamOptions,
    links: Links,
    gone: Gone,
) -> AsyncGenerator[bytes, None]:
    """The stream's bytes; a one-job stream ends after the job's terminal event.

    It ends too when ``gone`` (which waits on the client's connection) returns, and when
    the client overflows its buffer.
    """
    position = StreamPosition(start)
    yield f"retry: {options.retry_ms}\n".encode() + comment("stream open")
    while not subscription.overflowed:
        if subscription.take_lifecycle_due():
            while True:
                events = await reader.after(
                    user_id=subscription.user_id, job_id=subscription.job_id, seq=position.seq
                )
                for event in events:
                    yield await _lifecycle_frame(event, links)
                    position = StreamPosition(event.seq)
                    if subscription.job_id is not None and event.type in TERMINAL_TYPES:
                        return
                if len(events) < _PAGE:
                    break
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
