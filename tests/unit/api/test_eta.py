"""The jobs that start before a queued one, under the tiers' shares, and runs scaled by work."""

from __future__ import annotations

import pytest

from api.jobs.eta import median_unit_ms, starts_ahead, work_of
from api.jobs.queue import estimate
from contracts import JobType


def test_a_pro_job_goes_before_a_lower_backlog_that_is_not_owed_its_share() -> None:
    assert starts_ahead("pro", 0, {"pro": 1, "free": 5000}) == 0
    # 14 pro jobs ahead: the free tier is owed 10/70 of those starts.
    assert starts_ahead("pro", 14, {"pro": 15, "free": 5000}) == 16


def test_a_free_job_waits_for_the_higher_tiers_share_of_starts_but_not_more_than_is_queued() -> (
    None
):
    # 3 free turns (2 ahead, then it): 7 pro and 2 creator starts for each.
    assert starts_ahead("free", 2, {"free": 3, "pro": 100, "creator": 100}) == 2 + 21 + 6
    assert starts_ahead("free", 2, {"free": 3, "pro": 4, "creator": 1}) == 2 + 4 + 1
    assert starts_ahead("free", 0, {"free": 1}) == 0


def test_a_creator_job_sits_between_the_tiers() -> None:
    # 2 creator turns: 7 pro starts a turn at most; free is owed 1/2 a start per creator one.
    assert starts_ahead("creator", 1, {"pro": 50, "free": 50, "creator": 2}) == 1 + 7 + 0
    assert starts_ahead("creator", 4, {"pro": 0, "free": 50, "creator": 5}) == 4 + 2


def test_runs_are_scaled_by_their_work() -> None:
    small = work_of(JobType.IMAGE_GENERATE, {"steps": 4, "width": 512, "height": 512}, None)
    large = work_of(JobType.IMAGE_GENERATE, {"steps": 50, "width": 1024, "height": 1024}, None)
    assert large / small == pytest.approx(50 * 4 / 4)
    assert work_of(JobType.AUDIO_SPEECH, {"text": "x" * 300}, None) == 300
    enhance = work_of(
        JobType.VIDEO_ENHANCE, {"scale": 4}, {"duration_s": 10, "width": 640, "height": 360}
    )
    assert enhance == pytest.approx(10 * 0.2304 * 16)
    assert work_of(JobType.SYNTHETIC, {"steps": 0, "step_ms": 0}, None) >= 1
    # Recent runs of 1 s for 10 units and 4 s for 20: a median of 0.15 s a unit.
    assert median_unit_ms([(1000, 10.0), (4000, 20.0)]) == pytest.approx(150)
    assert median_unit_ms([]) is None


def test_the_estimate_runs_the_jobs_ahead_on_the_workers_then_this_one_for_its_own_time() -> None:
    queue = estimate(6, median_run_s=10.0, workers=3, run_s=2.5, same_tier_ahead=4)
    assert (queue.estimated_start_s, queue.eta_s, queue.run_s) == (20.0, 22.5, 2.5)
    assert queue.same_tier_ahead == 4
