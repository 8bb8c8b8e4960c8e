"""Fixed-window request limits kept in PostgreSQL, so that every API process shares them."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.problems import Problem

_HIT = text(
    """
    INSERT INTO rate_limit_windows (key, window_start, count) VALUES (:key, :window_start, 1)
    ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limit_windows.count + 1
    RETURNING count
    """
)
_PRUNE = text("DELETE FROM rate_limit_windows WHERE window_start < :before")


class RateLimiter:
    def __init__(self, *, engine: AsyncEngine) -> None:
        self._engine = engine

    async def hit(
        self, key: str, *, limit: int, window_s: int, now: datetime | None = None
    ) -> None:
        """Counts one request against ``key``; raises 429 with ``Retry-After`` past ``limit``."""
        now = now or datetime.now(UTC)
        start_s = math.floor(now.timestamp() / window_s) * window_s
        window_start = datetime.fromtimestamp(start_s, UTC)
        async with self._engine.begin() as connection:
            count = (
                await connection.execute(_HIT, {"key": key, "window_start": window_start})
            ).scalar_one()
            if count == 1:
                # Each new window clears windows long gone, so the table stays small without a job.
                before = window_start - timedelta(seconds=max(window_s, 3600))
                await connection.execute(_PRUNE, {"before": before})
        if count > limit:
            retry_after = max(1, math.ceil(start_s + window_s - now.timestamp()))
            raise Problem(
                429,
                f"too many requests; try again in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )
