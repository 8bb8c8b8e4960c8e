from __future__ import annotations

from bench.__main__ import RESULTS, default_out


def test_a_full_run_writes_the_latest_results() -> None:
    assert default_out(None) == RESULTS / "latest.json"


def test_a_run_of_some_workloads_leaves_the_latest_results_alone() -> None:
    assert default_out({"pipeline"}) == RESULTS / "partial.json"
