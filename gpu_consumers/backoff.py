"""When a failed attempt runs again: exponential backoff with a cap and jitter."""

from __future__ import annotations

import random

__all__ = ["retry_delay_ms"]

_RNG = random.Random()  # noqa: S311 - spreading retries, not secrets


def retry_delay_ms(
    attempt: int,
    *,
    base_ms: int,
    max_ms: int,
    jitter: float = 0.2,
    rng: random.Random | None = None,
) -> int:
    """The wait before attempt ``attempt + 1`` after attempt ``attempt`` (1-based) failed.

    ``base_ms * 2 ** (attempt - 1)``, capped at ``max_ms``, then spread by up to ``jitter``
    either way so that jobs failing together do not all come back together.
    """
    if attempt < 1:
        raise ValueError("attempts count from 1")
    delay = min(max_ms, base_ms << min(attempt - 1, 30))
    spread = (rng or _RNG).uniform(-jitter, jitter)
    return max(0, min(max_ms, round(delay * (1 + spread))))
