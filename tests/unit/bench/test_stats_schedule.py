"""The benchmark's statistics and open-loop schedules."""

from __future__ import annotations

import itertools
import math

import pytest

from bench import latency_summary, open_loop_schedule, percentile, spread


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    assert percentile([7.0], 99) == 7.0


def test_percentile_ignores_input_order_and_reports_a_real_value() -> None:
    values = [30.0, 10.0, 20.0, 40.0]
    assert percentile(values, 50) == 20.0
    assert percentile(values, 90) in values


def test_percentile_of_nothing_is_nan_and_bad_q_is_refused() -> None:
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        percentile([1.0], 101)


def test_latency_summary() -> None:
    summary = latency_summary([float(v) for v in range(1, 1001)])
    assert summary == {
        "count": 1000,
        "p50_ms": 500.0,
        "p90_ms": 900.0,
        "p99_ms": 990.0,
        "max_ms": 1000.0,
    }
    assert math.isnan(latency_summary([])["p99_ms"])


def test_spread_is_median_with_range_and_skips_missing_runs() -> None:
    band = spread([3.0, 1.0, math.nan, 2.0])
    assert (band.median, band.min, band.max) == (2.0, 1.0, 3.0)
    assert band.as_dict()["median"] == 2.0
    assert len(band.as_dict()["runs"]) == 4
    assert math.isnan(spread([math.nan]).median)


def test_open_loop_schedule_is_fixed_rate_from_start() -> None:
    times = open_loop_schedule(1000, 2.0, start=10.0)
    assert len(times) == 2000
    assert times[0] == 10.0
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(times)}
    assert gaps == {0.001}
    assert times[-1] < 12.0


def test_open_loop_schedule_refuses_nonsense() -> None:
    assert open_loop_schedule(100, 0) == []
    with pytest.raises(ValueError, match="rate"):
        open_loop_schedule(0, 1)
    with pytest.raises(ValueError, match="duration"):
        open_loop_schedule(10, -1)
