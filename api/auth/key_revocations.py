"""Tells every API process at once that cached API keys went stale.

A change that makes a cached key wrong (the key revoked, its owner's plan changed) sends a
``NOTIFY`` in the transaction that makes it, so it is announced exactly when it commits.
Each process that runs :func:`watch_revocations` drops what the notification names from
its ``ApiKeyCache``. Notifications sent while a process was not listening are lost, so
the whole cache is dropped whenever its listener (re)connects; a listener that silently
stalls still leaves the cache's own expiry (``auth.api_key_cache_s``) as the bound.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.key_cache import ApiKeyCache
from api.pg_listener import listen

__all__ = ["CHANNEL", "announce_key_revoked", "announce_user_changed", "watch_revocations"]

CHANNEL = "genstream_api_keys"
_log = logging.getLogger(__name__)


async def announce_key_revoked(db: AsyncSession, key_id: uuid.UUID) -> None:
    """Sent when ``db``'s transaction commits; nothing is sent if it rolls back."""
    await db.execute(select(func.pg_notify(CHANNEL, f"key:{key_id}")))


async def announce_user_changed(db: AsyncSession, user_id: uuid.UUID) -> None:
    """Every key of the user is dropped: their entries carry the user's old plan."""
    await db.execute(select(func.pg_notify(CHANNEL, f"user:{user_id}")))


def apply_notification(cache: ApiKeyCache, payload: str) -> None:
    """Drops what ``payload`` names; one it cannot read drops everything (the safe side)."""
    kind, _, value = payload.partition(":")
    try:
        subject = uuid.UUID(value)
    except ValueError:
        subject = None
    if kind == "key" and subject is not None:
        cache.forget_key(subject)
    elif kind == "user" and subject is not None:
        cache.forget_user(subject)
    else:
        _log.warning("unreadable API key notification; every cached key dropped")
        cache.forget_all()


async def watch_revocations(conninfo: str, cache: ApiKeyCache) -> None:
    """Runs until cancelled: the process's cache follows every announcement."""
    await listen(
        conninfo,
        CHANNEL,
        on_notify=lambda payload: apply_notification(cache, payload),
        on_connect=cache.forget_all,
    )
