"""Waiting for what the real stack does, with a deadline instead of a sleep."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["poll_until"]


def poll_until(
    check: Callable[[], bool],
    *,
    timeout_s: float = 30.0,
    what: str | Callable[[], str] = "",
    interval_s: float = 0.05,
) -> None:
    """Polls ``check`` until it holds; fails at the deadline, naming ``what`` it waited for.

    ``what`` may be a callable, to describe the state the check last saw.
    """
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"not within {timeout_s:.0f}s: {described or check}")
        time.sleep(interval_s)
