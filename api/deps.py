"""FastAPI dependencies, as ``Annotated`` aliases the routes use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.ratelimit import RateLimiter
from api.settings import ApiSettings

# Dependencies are coroutines, even those that never wait: FastAPI runs plain functions in
# its thread pool, a thread hop per dependency per request.


async def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as session:
        yield session


async def get_rate_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


async def client_address(request: Request) -> str:
    """The caller's address as the server took it: a trusted proxy's ``X-Forwarded-For`` is
    read by uvicorn, from ``api.trusted_proxies`` (``api.main``), and nowhere else."""
    return request.client.host if request.client else "unknown"


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
RateLimiterDep = Annotated[RateLimiter, Depends(get_rate_limiter)]
ClientAddressDep = Annotated[str, Depends(client_address)]
