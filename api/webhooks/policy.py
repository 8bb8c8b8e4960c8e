"""The retry policy: which answers count as delivered, worth retrying, or final; and when.

2xx is delivered. Network errors, timeouts, 408, 429 and 5xx are retried with exponential
backoff and jitter, honouring ``Retry-After`` up to a cap, until the attempts run out.
Anything else (redirects included: they are never followed) fails at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Final

__all__ = ["RetryPolicy", "Verdict", "parse_retry_after", "verdict_for"]

_RETRIED_CODES: Final = frozenset({408, 429})


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"


def verdict_for(status_code: int | None) -> Verdict:
    """What an answer means; ``None`` is no answer at all (network error or timeout)."""
    if status_code is None or status_code in _RETRIED_CODES or status_code >= 500:
        return Verdict.RETRY
    if 200 <= status_code < 300:
        return Verdict.DELIVERED
    return Verdict.FAILED


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), if valid."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - now).total_seconds())


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    max_attempts: int
    base_s: float
    max_s: float
    retry_after_cap_s: float

    def delay_s(
        self, attempt: int, *, retry_after_s: float | None = None, rng: random.Random | None = None
    ) -> float:
        """The wait after failed attempt number ``attempt`` (1 for the first).

        Half of the exponential step is fixed and half random ("equal jitter"): retries of
        many deliveries that failed together spread out, yet none comes back at once.
        """
        step = min(self.max_s, self.base_s * 2.0 ** (attempt - 1))
        draw = rng.uniform if rng is not None else random.uniform
        delay = step / 2 + draw(0, step / 2)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.retry_after_cap_s))
        return delay

    def gives_up_after(self, attempt: int) -> bool:
        return attempt >= self.max_attempts
