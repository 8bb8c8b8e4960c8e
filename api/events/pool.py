"""The engine event streams read with: a small fixed pool of their own."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from api.settings import ApiSettings
from genstream.db import async_engine

__all__ = ["stream_engine"]


def stream_engine(settings: ApiSettings, *, schema: str | None = None) -> AsyncEngine:
    """``reads.sse_pool_size`` connections and no overflow: streams wait on each other for
    them, while requests keep the API's main pool to themselves."""
    return async_engine(
        settings.pg, schema=schema, pool_size=settings.reads.sse_pool_size, max_overflow=0
    )
