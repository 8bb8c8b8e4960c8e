"""API keys: long-lived bearer secrets for programs, revocable one by one.

Only a digest and a short prefix are stored; the key itself is shown once, at creation.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.key_revocations import announce_key_revoked
from api.auth.tokens import digest, new_secret
from genstream.db.models import ApiKey, User

KEY_PREFIX: Final = "gsk_"
SHOWN_PREFIX_LENGTH: Final = 12
MAX_ACTIVE_KEYS: Final = 20
_LAST_USED_RESOLUTION: Final = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per key, so busy keys cost no write each call."""


class TooManyKeysError(Exception):
    pass


def looks_like_api_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


async def create_api_key(
    db: AsyncSession, *, user_id: uuid.UUID, name: str, daily_credit_cap: int | None = None
) -> tuple[ApiKey, str]:
    """A new key and its secret; commits. Raises ``TooManyKeysError`` past the limit."""
    # The user's row lock serialises concurrent creations, so the count below cannot go stale.
    await db.execute(select(User.id).where(User.id == user_id).with_for_update())
    active = (
        await db.execute(
            select(func.count())
            .select_from(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        )
    ).scalar_one()
    if active >= MAX_ACTIVE_KEYS:
        await db.rollback()
        raise TooManyKeysError(f"at most {MAX_ACTIVE_KEYS} active API keys per account")
    secret = new_secret(KEY_PREFIX)
    key = ApiKey(
        id=uuid.uuid4(),
        user_id=user_id,
        name=name,
        prefix=secret[:SHOWN_PREFIX_LENGTH],
        key_hash=digest(secret),
        created_at=datetime.now(UTC),
        daily_credit_cap=daily_credit_cap,
    )
    db.add(key)
    await db.commit()
    return key, secret


async def list_api_keys(db: AsyncSession, *, user_id: uuid.UUID) -> Sequence[ApiKey]:
    """The user's active keys, oldest first."""
    return (
        (
            await db.execute(
                select(ApiKey)
                .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
                .order_by(ApiKey.created_at, ApiKey.id)
            )
        )
        .scalars()
        .all()
    )


async def revoke_api_key(
    db: AsyncSession, *, user_id: uuid.UUID, key_id: uuid.UUID, now: datetime | None = None
) -> bool:
    """Revokes one of the user's active keys; ``False`` when there is no such key. Commits."""
    result = await db.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now or datetime.now(UTC))
        .returning(ApiKey.id)
    )
    revoked = result.scalar_one_or_none() is not None
    if revoked:
        await announce_key_revoked(db, key_id)
    await db.commit()
    return revoked


async def api_key_user(
    db: AsyncSession, secret: str, *, now: datetime | None = None
) -> tuple[User, uuid.UUID] | None:
    """The owner and id of an active key, or ``None``; records the use (commits then)."""
    now = now or datetime.now(UTC)
    row = (
        await db.execute(
            select(User, ApiKey.id)
            .join(ApiKey, ApiKey.user_id == User.id)
            .where(ApiKey.key_hash == digest(secret), ApiKey.revoked_at.is_(None))
        )
    ).one_or_none()
    if row is None:
        return None
    user, key_id = row
    stale = now - _LAST_USED_RESOLUTION
    touched = await db.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < stale),
        )
        .values(last_used_at=now)
    )
    if touched.rowcount:  # type: ignore[attr-defined]
        await db.commit()
    return user, key_id
