"""Who is calling: the user behind a bearer access token or API key, checked on every request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth.api_keys import api_key_user, looks_like_api_key
from api.auth.sessions import session_user
from api.auth.tokens import InvalidTokenError, verify_access_token
from api.deps import SessionDep, SettingsDep
from api.problems import Problem
from genstream.db.models import User

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


async def current_user(principal: Annotated[Principal, Depends(current_principal)]) -> User:
    """The calling user; answers 401 with a ``WWW-Authenticate`` challenge otherwise."""
    return principal.user


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
CurrentUser = Annotated[User, Depends(current_user)]
