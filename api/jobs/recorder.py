"""The job rows of submissions, written by group commit: one statement for many requests.

``insert`` commits a new row (or finds its idempotency key taken) and ``mark_emitted``
records the broker's acknowledgement; both return once their statement has committed.
Each statement is a transaction of its own (autocommit), so a batch's rows are durable
together when it returns. A batch that fails for one row's sake (a value the database
refuses) is written again row by row, so that only that request fails; a database that is
unreachable or out of connections fails the whole batch, which each request reports as 503.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import BigInteger, DateTime, String, TextClause, Uuid, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

from api.jobs.batching import Coalescer
from contracts import JobStatus

__all__ = ["JobRecorder", "NewJob"]

_UNAVAILABLE: Final = (OperationalError, InterfaceError, PoolTimeoutError)

_TEXT_COLUMNS: Final = (
    "id",
    "type",
    "input",
    "media",
    "webhook_url",
    "idempotency_key",
    "request_hash",
    "event_id",
    "event_trace",
    "webhook_events",
    "metadata",
    "end_user",
)
# One statement text whatever the batch size, so the server prepares it once per connection.
_INSERT: Final = text(
    "INSERT INTO jobs (id, user_id, type, status, input, media, webhook_url, idempotency_key, "
    "request_hash, event_id, event_trace, created_at, updated_at, webhook_events, metadata, "
    "end_user, api_key_id, credits_quoted) "
    "SELECT n.id, n.user_id, n.type, :status, CAST(n.input AS jsonb), CAST(n.media AS jsonb), "
    "n.webhook_url, n.idempotency_key, n.request_hash, n.event_id, n.event_trace, "
    "n.created_at, n.created_at, CAST(n.webhook_events AS jsonb), CAST(n.metadata AS jsonb), "
    "n.end_user, n.api_key_id, n.credits_quoted "
    "FROM unnest(:id, :user_id, :type, :input, :media, :webhook_url, :idempotency_key, "
    ":request_hash, :event_id, :event_trace, :created_at, :webhook_events, :metadata, "
    ":end_user, :api_key_id, :credits_quoted) "
    "AS n(id, user_id, type, input, media, webhook_url, idempotency_key, request_hash, "
    "event_id, event_trace, created_at, webhook_events, metadata, end_user, api_key_id, "
    "credits_quoted) "
    "ON CONFLICT (user_id, idempotency_key) DO NOTHING "
    "RETURNING id"
).bindparams(
    *(bindparam(column, type_=ARRAY(String)) for column in _TEXT_COLUMNS),
    bindparam("user_id", type_=ARRAY(Uuid)),
    bindparam("api_key_id", type_=ARRAY(Uuid)),
    bindparam("credits_quoted", type_=ARRAY(BigInteger)),
    bindparam("created_at", type_=ARRAY(DateTime(timezone=True))),
)
_MARK_EMITTED: Final[TextClause] = text(
    "UPDATE jobs SET emitted_at = :at WHERE id = ANY(:ids) AND emitted_at IS NULL"
).bindparams(bindparam("ids", type_=ARRAY(String)))


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job row as submitted; ``input`` and ``media`` are JSON text."""

    id: str
    user_id: uuid.UUID
    type: str
    input: str
    media: str | None
    webhook_url: str | None
    idempotency_key: str | None
    request_hash: str
    event_id: str
    event_trace: str
    created_at: datetime
    webhook_events: str | None = None
    """JSON text, as ``metadata``."""
    metadata: str | None = None
    end_user: str | None = None
    api_key_id: uuid.UUID | None = None
    credits_quoted: int | None = None


class JobRecorder:
    """Writes submissions' rows for a whole API process, batching concurrent requests.

    ``max_batch`` rows go in one statement at most, and at most ``concurrency`` statements
    of each kind run at a time (each on a pooled connection of ``engine``).
    """

    def __init__(self, *, engine: AsyncEngine, max_batch: int, concurrency: int) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._inserts = Coalescer[NewJob, bool](
            self._insert_batch, max_batch=max_batch, concurrency=concurrency
        )
        self._marks = Coalescer[str, None](
            self._mark_batch, max_batch=max_batch, concurrency=concurrency
        )

    async def insert(self, job: NewJob) -> bool:
        """Commits ``job``'s row; ``False`` when its user's idempotency key is already taken."""
        return await self._inserts.submit(job)

    async def mark_emitted(self, job_id: str) -> None:
        """Records that the broker acknowledged the job's ``job.requested``."""
        await self._marks.submit(job_id)

    async def close(self) -> None:
        """Waits for the statements under way."""
        await self._inserts.wait_idle()
        await self._marks.wait_idle()

    async def _insert_batch(self, jobs: Sequence[NewJob]) -> list[bool | Exception]:
        try:
            inserted = await self._insert_rows(jobs)
        except _UNAVAILABLE:
            raise
        except Exception:
            if len(jobs) == 1:
                raise
            return [await _outcome(self._insert_rows([job]), job.id) for job in jobs]
        return [job.id in inserted for job in jobs]

    async def _insert_rows(self, jobs: Sequence[NewJob]) -> set[str]:
        parameters: dict[str, Any] = {
            column: [getattr(job, column) for job in jobs] for column in _TEXT_COLUMNS
        }
        parameters["user_id"] = [job.user_id for job in jobs]
        parameters["api_key_id"] = [job.api_key_id for job in jobs]
        parameters["credits_quoted"] = [job.credits_quoted for job in jobs]
        parameters["created_at"] = [job.created_at for job in jobs]
        parameters["status"] = JobStatus.PENDING.value
        async with self._engine.connect() as connection:
            result = await connection.execute(_INSERT, parameters)
            return set(result.scalars().all())

    async def _mark_batch(self, job_ids: Sequence[str]) -> list[None]:
        async with self._engine.connect() as connection:
            await connection.execute(_MARK_EMITTED, {"ids": list(job_ids), "at": datetime.now(UTC)})
        return [None] * len(job_ids)


async def _outcome(inserting: Awaitable[set[str]], job_id: str) -> bool | Exception:
    try:
        inserted: set[str] = await inserting
    except Exception as error:  # this row's own failure, for its request alone
        return error
    return job_id in inserted
