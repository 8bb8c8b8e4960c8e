"""Retry policy: what counts as delivered, retried or failed, and how long to wait."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from api.webhooks.policy import RetryPolicy, Verdict, parse_retry_after, verdict_for

POLICY = RetryPolicy(max_attempts=5, base_s=10.0, max_s=100.0, retry_after_cap_s=60.0)


@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        (200, Verdict.DELIVERED),
        (202, Verdict.DELIVERED),
        (204, Verdict.DELIVERED),
        (None, Verdict.RETRY),
        (408, Verdict.RETRY),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (502, Verdict.RETRY),
        (503, Verdict.RETRY),
        (301, Verdict.FAILED),
        (302, Verdict.FAILED),
        (400, Verdict.FAILED),
        (401, Verdict.FAILED),
        (404, Verdict.FAILED),
        (410, Verdict.FAILED),
    ],
)
def test_verdicts(code: int | None, verdict: Verdict) -> None:
    assert verdict_for(code) is verdict


def test_delay_doubles_within_its_jitter_and_stops_at_the_cap() -> None:
    rng = random.Random(7)
    for attempt, step in [(1, 10.0), (2, 20.0), (3, 40.0), (4, 80.0), (5, 100.0), (9, 100.0)]:
        delays = [POLICY.delay_s(attempt, rng=rng) for _ in range(200)]
        assert all(step / 2 <= delay <= step for delay in delays)
        # Jitter: the delays spread over the upper half of the step.
        assert max(delays) - min(delays) > step / 4


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    rng = random.Random(1)
    assert POLICY.delay_s(1, retry_after_s=45.0, rng=rng) == 45.0
    assert POLICY.delay_s(1, retry_after_s=3600.0, rng=rng) == 60.0
    # A shorter Retry-After than the backoff does not make the retry come sooner.
    assert POLICY.delay_s(4, retry_after_s=1.0, rng=rng) >= 40.0


def test_retry_after_parsing() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 7 ", now=now) == 7.0
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now=now) == 90.0
    earlier = format_datetime(now - timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(earlier, now=now) == 0.0
    assert parse_retry_after(None, now=now) is None
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("-5", now=now) is None


def test_gives_up_after_the_last_attempt() -> None:
    assert not POLICY.gives_up_after(4)
    assert POLICY.gives_up_after(5)
