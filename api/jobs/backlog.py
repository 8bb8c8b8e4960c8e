"""The bound on a user's unfinished jobs, answered at submit with 429 ``queue_full``.

A plan runs ``max_concurrent_jobs`` of a user's jobs at once and lets ``max_waiting_jobs``
more wait their turn (the processors hold them, in order). Past both the processors refuse a
job; the API says so at once, from the read model, so that a client learns it from its
``POST`` rather than from the job's rejection a moment later.

Each user's count is read at most once every ``ttl_s`` (10 s) per process and counted up by
the submissions the process makes meanwhile: the submission path stays free of a query per
request (a user submitting once a second would otherwise ask at every one), and the
processors' refusal stays the exact bound. Between reads the count only grows, so a user is
refused at most ``ttl_s`` longer than the bound says, never let past it by this process.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from typing import Final

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.problems import Problem
from contracts import TERMINAL_STATUSES, JobStatus, Plan, load_catalog

__all__ = ["OpenJobs", "open_jobs"]

RETRY_AFTER_S: Final = 10
"""As long as a count is kept: after it, the count is read again."""
"""What a refused client is told to wait: the user's own jobs end at their own pace."""

_UNFINISHED: Final = sorted(s.value for s in JobStatus if s not in TERMINAL_STATUSES)
_COUNT = text(
    "SELECT count(*) FROM jobs WHERE user_id = :user_id AND status IN :unfinished"
).bindparams(bindparam("unfinished", expanding=True))


class OpenJobs:
    def __init__(self, *, ttl_s: float = 10.0, users: int = 100_000) -> None:
        self._ttl_s = ttl_s
        self._users = users
        self._counts: OrderedDict[uuid.UUID, tuple[float, int]] = OrderedDict()

    async def check(
        self, sessions: async_sessionmaker[AsyncSession], *, user_id: uuid.UUID, plan: Plan
    ) -> None:
        """Raises 429 ``queue_full`` when ``user_id`` has as many unfinished jobs as the plan
        runs and lets wait."""
        limits = load_catalog().limits(plan)
        bound = limits.max_concurrent_jobs + limits.max_waiting_jobs
        count = await self._count(sessions, user_id)
        if count >= bound:
            raise Problem(
                429,
                f"{count} unfinished jobs: the {plan.value} plan runs"
                f" {limits.max_concurrent_jobs} at once and lets {limits.max_waiting_jobs}"
                " more wait their turn",
                type_="queue_full",
                title="Too many unfinished jobs",
                headers={"Retry-After": str(RETRY_AFTER_S)},
                unfinished=count,
                max_concurrent_jobs=limits.max_concurrent_jobs,
                max_waiting_jobs=limits.max_waiting_jobs,
            )

    def submitted(self, user_id: uuid.UUID) -> None:
        """Counts a job this process has just recorded for ``user_id``."""
        known = self._counts.get(user_id)
        if known is not None:
            self._counts[user_id] = (known[0], known[1] + 1)

    async def _count(self, sessions: async_sessionmaker[AsyncSession], user_id: uuid.UUID) -> int:
        now = time.monotonic()
        known = self._counts.get(user_id)
        if known is not None and now - known[0] < self._ttl_s:
            return known[1]
        async with sessions() as session:
            count = int(
                await session.scalar(_COUNT, {"user_id": user_id, "unfinished": _UNFINISHED}) or 0
            )
        self._counts[user_id] = (now, count)
        self._counts.move_to_end(user_id)
        while len(self._counts) > self._users:
            self._counts.popitem(last=False)
        return count


open_jobs: Final = OpenJobs()
"""The process's counts, shared by its requests."""
