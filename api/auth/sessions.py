"""Sign-in sessions and their rotating refresh tokens.

A session is one sign-in. Its refresh tokens form a chain: each exchange marks the token used
and issues the next one. A used token presented again means two parties hold it, so the whole
session ends, the honest party included; that is the price of noticing theft. A session expires
``refresh_ttl_s`` after its last exchange.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.tokens import digest, issue_access_token, new_secret
from api.settings import AuthSettings
from genstream.db.models import AuthSession, RefreshToken, User


class RefreshRefusedError(Exception):
    """The refresh token is unknown, already used, or its session has ended."""


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    """Seconds the access token is valid for."""


def _issue(
    db: AsyncSession, settings: AuthSettings, session: AuthSession, now: datetime
) -> IssuedTokens:
    refresh_token = new_secret()
    db.add(RefreshToken(session_id=session.id, token_hash=digest(refresh_token), issued_at=now))
    access_token = issue_access_token(
        settings, user_id=session.user_id, session_id=session.id, now=now
    )
    return IssuedTokens(access_token, refresh_token, settings.access_ttl_s)


async def start_session(
    db: AsyncSession, settings: AuthSettings, user: User, *, now: datetime | None = None
) -> IssuedTokens:
    """Signs ``user`` in: a new session with its first refresh token; commits."""
    now = now or datetime.now(UTC)
    session = AuthSession(
        id=uuid.uuid4(),
        user_id=user.id,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.refresh_ttl_s),
    )
    db.add(session)
    await db.flush()
    tokens = _issue(db, settings, session, now)
    await db.commit()
    return tokens


async def rotate(
    db: AsyncSession, settings: AuthSettings, refresh_token: str, *, now: datetime | None = None
) -> IssuedTokens:
    """Exchanges ``refresh_token`` for a new pair; commits, also when it ends a session.

    The token and session rows stay locked until the commit, so of two exchanges of one token
    the second sees it used.
    """
    now = now or datetime.now(UTC)
    row = (
        await db.execute(
            select(RefreshToken, AuthSession)
            .join(AuthSession, AuthSession.id == RefreshToken.session_id)
            .where(RefreshToken.token_hash == digest(refresh_token))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if row is None:
        await db.rollback()
        raise RefreshRefusedError("unknown refresh token")
    token, session = row
    if session.revoked_at is not None or session.expires_at <= now:
        await db.rollback()
        raise RefreshRefusedError("the session has ended")
    if token.used_at is not None:
        session.revoked_at = now
        await db.commit()
        raise RefreshRefusedError("refresh token reused; the session is revoked")
    token.used_at = now
    session.expires_at = now + timedelta(seconds=settings.refresh_ttl_s)
    tokens = _issue(db, settings, session, now)
    await db.commit()
    return tokens


async def revoke(db: AsyncSession, session_id: uuid.UUID, *, now: datetime | None = None) -> None:
    """Ends the session: its access and refresh tokens are refused from now on; commits."""
    await db.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now or datetime.now(UTC))
    )
    await db.commit()


async def session_user(
    db: AsyncSession, *, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime | None = None
) -> User | None:
    """The user of a live session, or ``None`` when it was revoked, expired or is not theirs."""
    return (
        await db.execute(
            select(User)
            .join(AuthSession, AuthSession.user_id == User.id)
            .where(
                AuthSession.id == session_id,
                User.id == user_id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > (now or datetime.now(UTC)),
            )
        )
    ).scalar_one_or_none()
