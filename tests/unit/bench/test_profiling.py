"""The summary of py-spy's collapsed stacks, and the combination of repeated runs."""

from __future__ import annotations

import math

from bench.profiling import top_frames
from bench.workloads import combine


def test_top_frames_counts_self_and_inclusive_samples() -> None:
    collapsed = [
        "main (a.py:1);handle (b.py:2);query (c.py:3) 6",
        "main (a.py:1);handle (b.py:2) 2",
        "main (a.py:1);idle (d.py:4) 2",
        "not a stack line",
    ]
    summary = top_frames(collapsed, limit=2)
    assert summary["samples"] == 10
    assert summary["self"][0] == {"frame": "query (c.py:3)", "share": 0.6, "samples": 6}
    assert len(summary["self"]) == 2
    inclusive = {row["frame"]: row["share"] for row in top_frames(collapsed)["inclusive"]}
    assert inclusive["main (a.py:1)"] == 1.0
    assert inclusive["handle (b.py:2)"] == 0.8


def test_combine_takes_medians_and_keeps_the_spread_and_runs() -> None:
    runs = [{"p99_ms": 30.0, "x": 1.0}, {"p99_ms": 10.0, "x": math.nan}, {"p99_ms": 20.0}]
    section = combine(runs, ["p99_ms", "x", "absent"])
    assert section["p99_ms"] == 20.0
    assert section["spread"]["p99_ms"]["min"] == 10.0
    assert section["spread"]["p99_ms"]["max"] == 30.0
    assert section["x"] == 1.0
    assert section["absent"] is None
    assert section["runs"] == runs
