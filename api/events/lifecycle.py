"""Stored lifecycle events, read from ``job_events`` and framed for the streams.

An event is framed once, download links included, and the same bytes go to every stream
that sends it: those of its user that were listening when it was read (``UserFeed``), or
the one stream that read it from its own position (a resumed stream catching up).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.events.ids import frame
from api.events.metrics import LINKS_SIGNED, STORED_READS
from api.jobs.downloads import sign_downloads
from api.projection.jobs import TERMINAL_TYPES
from api.settings import ApiSettings
from contracts import JobCompleted, JobPreview
from contracts.event import split_wire_type
from genstream.db.read_model import JobEventRow

__all__ = [
    "PAGE",
    "LifecycleEvent",
    "LifecycleReader",
    "Links",
    "Reading",
    "StoredJobEvent",
    "download_links",
    "event_name",
]

PAGE: Final = 200
"""Most events one read returns; a shorter page means the reader is up to date."""
_PREVIEW: Final = JobPreview.wire_type()
_COMPLETED: Final = JobCompleted.wire_type()

Reading = Literal["news", "history"]
"""Who reads: a user's feed after an announcement, or one stream catching up alone."""


@dataclass(frozen=True, slots=True)
class StoredJobEvent:
    seq: int
    event_id: str
    job_id: str
    type: str
    time: datetime
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """A stored event as the streams send it."""

    seq: int
    job_id: str
    terminal: bool
    """The job's stream ends after it."""
    frame: bytes


Links = Callable[[str, StoredJobEvent], Awaitable[dict[str, Any]]]
"""Extra fields for a user's lifecycle event (download URLs of its files)."""


def download_links(settings: ApiSettings) -> Links:
    """Presigned GET URLs of a preview's or a completed job's files."""

    async def links(user_id: str, event: StoredJobEvent) -> dict[str, Any]:
        if event.type == _PREVIEW:
            keys = [event.data["preview_key"]]
        elif event.type == _COMPLETED:
            keys = [output["key"] for output in event.data["outputs"]]
        else:
            return {}
        signed = await sign_downloads(settings, user_id=user_id, job_id=event.job_id, keys=keys)
        if signed.urls:
            LINKS_SIGNED.inc()
        expires = signed.expires_at.isoformat() if signed.expires_at else None
        return {"urls": dict(signed.urls), "urls_expire_at": expires}

    return links


def event_name(wire_type: str) -> str:
    """``genstream.job.completed.v1`` → ``job.completed``."""
    parts = split_wire_type(wire_type)
    name = parts[0] if parts else wire_type
    return name.removeprefix("genstream.")


class LifecycleReader:
    """Reads a user's stored job events; each call takes a pooled connection briefly."""

    def __init__(self, engine: AsyncEngine, *, links: Links) -> None:
        self._engine = engine
        self._links = links

    async def after(
        self, *, user_id: str, job_id: str | None, seq: int, reading: Reading
    ) -> list[LifecycleEvent]:
        """At most ``PAGE`` of the user's events (of one job, with ``job_id``) after ``seq``,
        framed."""
        table = JobEventRow
        query = (
            select(table.seq, table.event_id, table.job_id, table.type, table.time, table.data)
            .where(table.user_id == user_id, table.seq > seq)
            .order_by(table.seq)
            .limit(PAGE)
        )
        if job_id is not None:
            query = query.where(table.job_id == job_id)
        STORED_READS.labels(reading).inc()
        async with self._engine.connect() as connection:
            rows = [StoredJobEvent(*row) for row in await connection.execute(query)]
        return [await self._framed(user_id, event) for event in rows]

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

    async def _framed(self, user_id: str, event: StoredJobEvent) -> LifecycleEvent:
        data = {
            "id": event.event_id,
            "type": event.type,
            "job_id": event.job_id,
            "time": event.time.isoformat(),
            "data": event.data,
            **await self._links(user_id, event),
        }
        return LifecycleEvent(
            seq=event.seq,
            job_id=event.job_id,
            terminal=event.type in TERMINAL_TYPES,
            frame=frame(event=event_name(event.type), data=data, event_id=str(event.seq)),
        )
