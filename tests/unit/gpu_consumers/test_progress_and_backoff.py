"""Progress throttling and retry backoff."""

from __future__ import annotations

import itertools
import random

import pytest

from gpu_consumers.backoff import retry_delay_ms
from gpu_consumers.progress import ProgressThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_is_throttled_but_first_last_and_forced_always_pass() -> None:
    clock = Clock()
    throttle = ProgressThrottle(0.25, clock=clock)
    admitted = []
    for step in range(1, 101):
        clock.now = step * 0.01  # a step every 10 ms
        if throttle.admit(step, 100, force=step == 37):
            admitted.append(step)
    assert admitted[0] == 1
    assert admitted[-1] == 100
    assert 37 in admitted
    # Otherwise one per 250 ms, that is 25 steps apart.
    regular = [step for step in admitted if step not in (37, 100)]
    assert all(b - a >= 25 for a, b in itertools.pairwise(regular))
    assert len(admitted) <= 7


def test_backoff_doubles_up_to_the_cap() -> None:
    exact = [retry_delay_ms(n, base_ms=100, max_ms=1000, jitter=0) for n in range(1, 7)]
    assert exact == [100, 200, 400, 800, 1000, 1000]


def test_backoff_jitter_stays_within_bounds() -> None:
    rng = random.Random(7)
    delays = {retry_delay_ms(3, base_ms=100, max_ms=10_000, rng=rng) for _ in range(200)}
    assert min(delays) >= 320
    assert max(delays) <= 480
    assert len(delays) > 10


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        retry_delay_ms(0, base_ms=1, max_ms=1)
