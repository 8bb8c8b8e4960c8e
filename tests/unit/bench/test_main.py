from __future__ import annotations

from bench.__main__ import RESULTS, default_out


def test_a_full_run_writes_the_latest_results() -> None:
    assert default_out(None, quick=False) == RESULTS / "latest.json"


def test_a_run_of_some_workloads_leaves_the_latest_results_alone() -> None:
    assert default_out({"pipeline"}, quick=False) == RESULTS / "partial.json"


def test_a_quick_run_leaves_the_latest_results_alone() -> None:
    assert default_out(None, quick=True) == RESULTS / "quick.json"
    assert default_out({"sse"}, quick=True) == RESULTS / "quick.json"
