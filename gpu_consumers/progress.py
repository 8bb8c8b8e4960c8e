"""Throttling of progress events: one per interval per job, never the ones that matter."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["ProgressThrottle"]


class ProgressThrottle:
    """Decides which progress reports of one job are published.

    At most one report per ``interval_s``, except that the first, the last (100 %) and
    any the caller forces (a preview) always pass. A report held back is not queued: the
    next one that passes carries the newer figure anyway.
    """

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval_s
        self._clock = clock
        self._last: float | None = None

    def admit(self, step: int, total: int, *, force: bool = False) -> bool:
        now = self._clock()
        final = total > 0 and step >= total
        if force or final or self._last is None or now - self._last >= self._interval:
            self._last = now
            return True
        return False
