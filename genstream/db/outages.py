"""Riding out a PostgreSQL outage (a restart, a failover) instead of stopping on it.

A consumer that writes what it read to PostgreSQL holds the batch, waits and writes it again
until the database is back; its offsets are committed only after that, so nothing read
during the outage is skipped, and the service is still running when the database returns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

__all__ = ["is_outage", "through_outages"]

T = TypeVar("T")

_log = logging.getLogger(__name__)


def is_outage(error: DBAPIError) -> bool:
    """Whether ``error`` says the database could not be reached, not that a statement is wrong."""
    return isinstance(error, OperationalError | InterfaceError) or error.connection_invalidated


def through_outages(
    action: Callable[[], T],
    *,
    stop: threading.Event,
    what: str,
    first_wait_s: float = 0.2,
    longest_wait_s: float = 5.0,
) -> tuple[T] | None:
    """Runs ``action`` until it succeeds, waiting out outages with growing pauses.

    Returns the result in a 1-tuple, or ``None`` when ``stop`` is set before it succeeded.
    Errors that are not outages (a constraint, a bad statement) are raised at once.
    """
    wait_s = first_wait_s
    while True:
        try:
            return (action(),)
        except DBAPIError as error:
            if not is_outage(error):
                raise
            _log.warning(
                "database unavailable; %s waits and tries again",
                what,
                extra={"retry_in_s": wait_s, "error": type(error.orig).__name__},
            )
        if stop.wait(wait_s):
            return None
        wait_s = min(wait_s * 2, longest_wait_s)
