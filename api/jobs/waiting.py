"""Submissions that wait for their job's end (``Prefer: wait``), woken by the read model.

A job ends in whatever process the projection runs, and the API process that took the
request learns it the way every process does: the projection's ``NOTIFY`` of the user's new
events, on one ``LISTEN`` connection per process, opened at the first wait. Each notification
for a user with waiters here reads their jobs' statuses in one query; a poll every
``poll_s`` does the same for every waiter, for notifications lost while the listener was
reconnecting. Nothing is kept between processes, so any process can take any request.

At most ``capacity`` requests wait at once in one process; past it a request is not made to
wait at all (the route answers as without the preference).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sqlalchemy import String, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine

from api.pg_listener import listen
from contracts import TERMINAL_STATUSES
from genstream.db.read_model import JOB_EVENTS_CHANNEL

__all__ = ["JobWaiters"]

_log = logging.getLogger(__name__)

_ENDED = text("SELECT id FROM jobs WHERE id = ANY(:ids) AND status = ANY(:ended)").bindparams(
    bindparam("ids", type_=ARRAY(String)), bindparam("ended", type_=ARRAY(String))
)
_ENDED_STATUSES = sorted(status.value for status in TERMINAL_STATUSES)


class JobWaiters:
    def __init__(self, *, engine: AsyncEngine, capacity: int, poll_s: float) -> None:
        self._engine = engine
        self._capacity = capacity
        self._poll_s = poll_s
        self._waiting: dict[str, dict[str, list[asyncio.Future[None]]]] = {}
        """Futures by job, by user."""
        self._count = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._checks: dict[str, asyncio.Task[None]] = {}
        self._due: set[str] = set()
        self._start_lock = asyncio.Lock()

    @property
    def waiting(self) -> int:
        return self._count

    async def wait(self, *, user_id: str, job_id: str, timeout_s: float) -> bool | None:
        """Waits until the job has ended: ``True``; ``False`` when ``timeout_s`` passed
        first; ``None`` at once when ``capacity`` requests wait already."""
        if self._count >= self._capacity:
            return None
        self._count += 1
        ended = asyncio.get_running_loop().create_future()
        jobs = self._waiting.setdefault(user_id, {})
        jobs.setdefault(job_id, []).append(ended)
        try:
            await self._ensure_started()
            # The job may have ended before anything here listened for it.
            self._announce(user_id)
            try:
                await asyncio.wait_for(asyncio.shield(ended), timeout_s)
            except TimeoutError:
                return False
            return True
        finally:
            self._count -= 1
            self._forget(user_id, job_id, ended)

    def _forget(self, user_id: str, job_id: str, ended: asyncio.Future[None]) -> None:
        jobs = self._waiting.get(user_id, {})
        futures = jobs.get(job_id, [])
        if ended in futures:
            futures.remove(ended)
        if not futures:
            jobs.pop(job_id, None)
        if not jobs:
            self._waiting.pop(user_id, None)

    async def _ensure_started(self) -> None:
        if self._tasks:
            return
        async with self._start_lock:
            if self._tasks:
                return
            url = self._engine.url.set(drivername="postgresql")
            self._tasks = [
                asyncio.create_task(
                    listen(
                        url.render_as_string(hide_password=False),
                        JOB_EVENTS_CHANNEL,
                        on_notify=self._announce,
                        on_connect=self._announce_all,
                    ),
                    name="job-waiters-listener",
                ),
                asyncio.create_task(self._poll(), name="job-waiters-poll"),
            ]

    def _announce(self, user_id: str) -> None:
        """Reads the user's waited jobs' statuses, once more after a read under way."""
        if user_id not in self._waiting:
            return
        self._due.add(user_id)
        if user_id not in self._checks:
            self._checks[user_id] = asyncio.create_task(
                self._check(user_id), name=f"job-waiters-{user_id}"
            )

    def _announce_all(self) -> None:
        for user_id in list(self._waiting):
            self._announce(user_id)

    async def _check(self, user_id: str) -> None:
        try:
            while user_id in self._due and user_id in self._waiting:
                self._due.discard(user_id)
                try:
                    await self._wake_ended(list(self._waiting.get(user_id, {})))
                except Exception:
                    # The poll reads them again.
                    _log.exception("reading the status of waited jobs failed")
                    return
        finally:
            self._due.discard(user_id)
            del self._checks[user_id]

    async def _wake_ended(self, job_ids: Sequence[str]) -> None:
        if not job_ids:
            return
        async with self._engine.connect() as connection:
            rows = await connection.execute(_ENDED, {"ids": job_ids, "ended": _ENDED_STATUSES})
            ended = {job_id for (job_id,) in rows}
        for jobs in self._waiting.values():
            for job_id in ended & jobs.keys():
                for future in jobs[job_id]:
                    if not future.done():
                        future.set_result(None)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            job_ids = [job_id for jobs in self._waiting.values() for job_id in jobs]
            try:
                await self._wake_ended(job_ids)
            except Exception:
                _log.exception("polling waited jobs failed")

    async def close(self) -> None:
        tasks = [*self._tasks, *self._checks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []
