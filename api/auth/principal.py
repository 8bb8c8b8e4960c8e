"""Who is calling: the user behind a bearer access token or API key.

``CurrentUser`` and ``CurrentPrincipal`` check the credentials against the database on every
request. ``CurrentCaller``, for routes that need only the user's id and plan, may believe an
API key from the process's ``ApiKeyCache`` (``auth.api_key_cache_s``): a key revoked
elsewhere keeps working there for at most that long.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.api_keys import api_key_user, looks_like_api_key
from api.auth.key_cache import ApiKeyCache, KeyOwner
from api.auth.sessions import session_user
from api.auth.tokens import InvalidTokenError, digest, verify_access_token
from api.deps import SessionDep, SettingsDep
from api.problems import Problem
from genstream.db.models import ApiKey, User

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An access token from `/v1/auth/token`, or an API key (`gsk_…`).",
)


@dataclass(frozen=True, slots=True)
class Principal:
    user: User
    session_id: uuid.UUID | None
    """The sign-in session of an access token; ``None`` for an API key."""
    api_key_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, without their database row: what hot routes need, and no more."""

    user_id: uuid.UUID
    plan: str
    api_key_id: uuid.UUID | None
    """The API key the call came with; ``None`` for an access token."""
    daily_credit_cap: int | None = None
    """The key's spend cap (credits a day); ``None`` without a key or a cap."""


def unauthorized(detail: str, *, error: str | None = "invalid_token") -> Problem:
    challenge = f'Bearer error="{error}"' if error else "Bearer"
    return Problem(401, detail, headers={"WWW-Authenticate": challenge})


async def current_principal(
    db: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise unauthorized("missing bearer token", error=None)
    token = credentials.credentials
    if looks_like_api_key(token):
        found = await api_key_user(db, token)
        if found is None:
            raise unauthorized("invalid or revoked API key")
        user, key_id = found
        return Principal(user=user, session_id=None, api_key_id=key_id)
    try:
        claims = verify_access_token(settings.auth, token)
    except InvalidTokenError:
        raise unauthorized("invalid or expired access token") from None
    session_owner = await session_user(db, user_id=claims.user_id, session_id=claims.session_id)
    if session_owner is None:
        raise unauthorized("the session has ended")
    return Principal(user=session_owner, session_id=claims.session_id, api_key_id=None)


async def get_api_key_cache(request: Request) -> ApiKeyCache:
    cache: ApiKeyCache = request.app.state.api_key_cache
    return cache


async def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """Like ``current_principal``, but an API key verified in the last
    ``auth.api_key_cache_s`` seconds is believed without asking the database again.

    It takes its collaborators from the app rather than as dependencies, and opens a
    database session only when it needs one: on a cache hit it costs no I/O at all.
    """
    state = request.app.state
    sessions: async_sessionmaker[AsyncSession] = state.sessions
    token = credentials.credentials if credentials is not None else ""
    if not looks_like_api_key(token):
        # Closed before the route runs: the routes that take a ``Caller`` then wait on
        # writers with connections of their own, which requests holding connections while
        # they wait could starve.
        async with sessions() as db:
            principal = await current_principal(db, state.settings, credentials)
        return Caller(user_id=principal.user.id, plan=principal.user.plan, api_key_id=None)

    async def lookup() -> KeyOwner | None:
        # A session of its own: the lookup may outlive the request that started it.
        async with sessions() as db:
            found = await api_key_user(db, token)
            if found is None:
                return None
            user, key_id = found
            cap = await db.scalar(select(ApiKey.daily_credit_cap).where(ApiKey.id == key_id))
        return KeyOwner(user_id=user.id, plan=user.plan, api_key_id=key_id, daily_credit_cap=cap)

    cache: ApiKeyCache = state.api_key_cache
    owner = await cache.owner(digest(token), lookup)
    if owner is None:
        raise unauthorized("invalid or revoked API key")
    return Caller(
        user_id=owner.user_id,
        plan=owner.plan,
        api_key_id=owner.api_key_id,
        daily_credit_cap=owner.daily_credit_cap,
    )


async def current_user(principal: Annotated[Principal, Depends(current_principal)]) -> User:
    """The calling user; answers 401 with a ``WWW-Authenticate`` challenge otherwise."""
    return principal.user


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
CurrentUser = Annotated[User, Depends(current_user)]
CurrentCaller = Annotated[Caller, Depends(current_caller)]
ApiKeyCacheDep = Annotated[ApiKeyCache, Depends(get_api_key_cache)]
