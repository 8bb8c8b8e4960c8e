"""An API key's daily spend cap: what its jobs of the UTC day cost, and the refusal past it.

A job counts what it was charged once settled (0 when its reservation was released) and,
until then, what the catalog quoted at submission; rejected jobs count nothing. The check
runs before the job's row is written, so concurrent submissions with one key may together
pass the cap by what they cost; each later one is refused.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.problems import Problem
from contracts import JobRequested, JobType, MediaInfo, load_catalog
from stream_processors.accounts import billable_quantity

__all__ = ["check_spend_cap", "quote"]

_SPENT = text(
    """
    SELECT k.daily_credit_cap, (
        SELECT coalesce(sum(coalesce(j.credits_charged, j.credits_quoted, 0)), 0) FROM jobs j
        WHERE j.api_key_id = k.id AND j.created_at >= :day AND j.status <> 'rejected'
    )
    FROM api_keys k WHERE k.id = :key_id
    """
)


def quote(job_type: JobType, job_input: BaseModel, media: MediaInfo | None) -> int:
    """The job's price by the catalog, as the processors will reserve it."""
    request = JobRequested.model_validate(
        {
            "job_id": "quote",
            "job_type": job_type,
            "input": job_input,
            "requested_at": datetime.now(UTC),
            "media": media,
        }
    )
    return load_catalog().price(job_type).of(billable_quantity(request))


async def check_spend_cap(
    sessions: async_sessionmaker[AsyncSession], *, api_key_id: uuid.UUID, cost: int
) -> None:
    """429 ``spend_cap`` when ``cost`` more would pass the key's cap for today."""
    now = datetime.now(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    async with sessions() as session:
        row = (await session.execute(_SPENT, {"key_id": api_key_id, "day": day})).one_or_none()
    if row is None or row[0] is None:
        return
    cap, spent = int(row[0]), int(row[1])
    if spent + cost > cap:
        retry = int((day + timedelta(days=1) - now).total_seconds()) + 1
        raise Problem(
            429,
            f"the API key's daily cap of {cap} credits would be passed: {spent} spent today, "
            f"this job costs {cost}",
            type_="spend_cap",
            title="Spend cap reached",
            headers={"Retry-After": str(retry)},
            cap=cap,
            spent=spent,
            cost=cost,
        )
