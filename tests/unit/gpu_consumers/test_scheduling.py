"""Tier scheduling: pro first, guaranteed shares under saturation, no banked idle credit."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from contracts import Tier
from gpu_consumers.scheduling import TierScheduler, parse_shares

SATURATED = {Tier.PRO: 10**6, Tier.CREATOR: 10**6, Tier.FREE: 10**6}


def test_under_saturation_each_tier_gets_its_share() -> None:
    scheduler = TierScheduler(parse_shares("70,20,10"))
    starts = Counter(scheduler.pick(SATURATED) for _ in range(1000))
    assert abs(starts[Tier.PRO] - 700) <= 2
    assert abs(starts[Tier.CREATOR] - 200) <= 2
    assert abs(starts[Tier.FREE] - 100) <= 2


def test_no_tier_waits_longer_than_its_stride() -> None:
    scheduler = TierScheduler(parse_shares("70,20,10"))
    picks = [scheduler.pick(SATURATED) for _ in range(200)]
    free_starts = [i for i, tier in enumerate(picks) if tier is Tier.FREE]
    assert free_starts[0] < 10
    assert max(b - a for a, b in itertools.pairwise(free_starts)) <= 11


def test_a_pro_job_behind_a_free_backlog_starts_next() -> None:
    scheduler = TierScheduler()
    for _ in range(50):
        assert scheduler.pick({Tier.FREE: 1000}) is Tier.FREE
    assert scheduler.pick({Tier.FREE: 950, Tier.PRO: 1}) is Tier.PRO


def test_an_idle_tier_banks_no_credit() -> None:
    scheduler = TierScheduler()
    for _ in range(100):
        scheduler.pick({Tier.PRO: 1})
    picks = Counter(scheduler.pick({Tier.PRO: 9, Tier.FREE: 9}) for _ in range(80))
    # Free had nothing waiting before; it now gets its share, not 100 jobs of catch-up.
    assert 5 <= picks[Tier.FREE] <= 14


def test_nothing_waiting_picks_nothing() -> None:
    assert TierScheduler().pick({}) is None
    assert TierScheduler().pick({Tier.PRO: 0}) is None


@pytest.mark.parametrize("text", ["70,20", "a,b,c", "70,0,30", "1,2,3,4"])
def test_bad_shares_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="share"):
        parse_shares(text)
