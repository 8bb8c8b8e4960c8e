"""A PostgreSQL connection that ``LISTEN``s on one channel, reconnecting when it drops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
from psycopg import sql

__all__ = ["listen"]

_log = logging.getLogger(__name__)
_RETRY_S = (0.5, 1.0, 2.0, 5.0)


async def listen(
    conninfo: str,
    channel: str,
    *,
    on_notify: Callable[[str], None],
    on_connect: Callable[[], None],
) -> None:
    """Calls ``on_notify(payload)`` for each notification on ``channel``, until cancelled.

    Notifications sent while the connection was down are lost, so ``on_connect`` runs after
    each (re)connection, once listening: the caller looks again for what it may have missed.
    """
    failures = 0
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                failures = 0
                on_connect()
                async for notification in conn.notifies():
                    on_notify(notification.payload)
        except psycopg.Error as error:
            delay = _RETRY_S[min(failures, len(_RETRY_S) - 1)]
            failures += 1
            _log.warning(
                "listener on %s lost its connection (%s); again in %ss", channel, error, delay
            )
            await asyncio.sleep(delay)
