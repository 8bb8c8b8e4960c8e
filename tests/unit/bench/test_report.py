"""The result document's shape, its ratios and target verdicts, and the printed table."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bench import TARGETS, build_document, evaluate_targets, render_table
from bench.report import ratios


def _ours() -> dict[str, Any]:
    return {
        "submit": {"max_rate_p99_50ms": 2000, "p99_ms_at_1000": 20.0, "spread": {}},
        "dispatch": {
            "p50_ms": 10.0,
            "p99_ms": 80.0,
            "spread": {"p50_ms": {"median": 10.0, "min": 9.0, "max": 12.0, "runs": [9, 10, 12]}},
        },
        "pipeline": {"jobs_per_s": 1200.0},
        "priority": {"pro_wait_p99_ms": 140.0, "pro_wait_limit_ms": 150, "free_share": 0.2},
        "overhead": {"ratio": 0.99},
        "sse": {"p99_ms_at_10000": 40.0, "rss_kib_per_client_at_10000": 35.0},
        "replay": {"events_per_s": 60_000.0},
    }


def _peer() -> dict[str, Any]:
    return {
        "submit": {"max_rate_p99_50ms": 1000, "p99_ms_at_1000": 40.0},
        "dispatch": {"p50_ms": 20.0, "p99_ms": 0},
        "pipeline": {"jobs_per_s": 600.0},
    }


def _document() -> dict[str, Any]:
    return build_document(
        config={"quick": True},
        machine={"cores": 2},
        ours=_ours(),
        peer=_peer(),
        notes=["provisional"],
        generated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_document_has_every_workload_and_placeholders() -> None:
    document = _document()
    for key in (
        "submit",
        "dispatch",
        "sse",
        "pipeline",
        "priority",
        "overhead",
        "replay",
        "peer_celery",
        "ratios",
        "machine",
        "config",
        "targets",
        "notes",
    ):
        assert key in document
    assert document["sse"]["p99_ms_at_10000"] == 40.0
    assert document["replay"]["events_per_s"] == 60_000.0
    assert set(document["peer_celery"]) == {"submit", "dispatch", "pipeline"}
    assert document["generated_at"] == "2026-01-01T00:00:00+00:00"
    json.dumps(document)  # serialisable as it is


def test_ratios_divide_shared_numeric_keys_and_skip_zero_divisors() -> None:
    shared = ratios(_ours(), _peer())
    assert shared["submit"] == {"max_rate_p99_50ms": 2.0, "p99_ms_at_1000": 0.5}
    assert shared["dispatch"] == {"p50_ms": 0.5}  # the peer's p99 of 0 gives no ratio
    assert shared["pipeline"] == {"jobs_per_s": 2.0}
    assert "priority" not in shared


def test_targets_are_judged_against_numbers_and_measured_limits() -> None:
    verdicts = {v["name"]: v for v in evaluate_targets(_document())}
    assert set(verdicts) == {t.name for t in TARGETS}
    assert verdicts["submit_rate"]["met"] is False
    assert verdicts["submit_p99_1000"]["met"] is True
    assert verdicts["dispatch_p50"]["met"] is True
    assert verdicts["dispatch_p99"]["met"] is False
    assert verdicts["pipeline_rate"]["met"] is True
    assert verdicts["pipeline_vs_peer"]["met"] is True
    assert verdicts["priority_pro_wait"]["threshold"] == 150
    assert verdicts["priority_pro_wait"]["met"] is True
    assert verdicts["priority_free_share"]["met"] is True
    assert verdicts["overhead_ratio"]["met"] is True
    assert verdicts["sse_p99"]["met"] is True
    assert verdicts["sse_memory"]["met"] is False
    assert verdicts["replay_rate"]["met"] is True


def test_a_target_without_a_figure_is_not_measured() -> None:
    document = build_document(config={}, machine={}, ours={}, peer={})
    assert all(verdict["met"] is None for verdict in document["targets"])
    assert document["submit"] == {"status": "not_run"}
    assert document["sse"] == {"status": "not_run"}


def test_table_shows_figures_spread_peer_ratio_and_verdicts() -> None:
    table = render_table(_document())
    row = next(line for line in table.splitlines() if line.startswith("dispatch.p50_ms"))
    assert "10 [9-12]" in row
    assert " 20 " in row
    assert "0.5" in row
    assert "sse.p99_ms_at_10000" in table
    assert "MISSED" in table
    assert "met" in table


def test_table_shows_records_per_job_and_the_cpu_total_beside_the_peers() -> None:
    ours = _ours()
    ours["pipeline"] = {
        "jobs_per_s": 1200.0,
        "cpu_ms_per_job.total": 12.0,
        "records_per_job.genstream-processors": 9.0,
        "records": {"jobs": 400, "settled": True},
    }
    peer = _peer()
    peer["pipeline"] = {"jobs_per_s": 600.0, "cpu_ms_per_job.total": 8.0}
    document = build_document(config={}, machine={}, ours=ours, peer=peer)
    assert document["ratios"]["pipeline"]["cpu_ms_per_job.total"] == 1.5
    lines = render_table(document).splitlines()
    total = next(line for line in lines if line.startswith("pipeline.cpu_ms_per_job.total"))
    assert total.split()[1:] == ["12", "8", "1.5"]
    records = next(line for line in lines if line.startswith("pipeline.records_per_job."))
    assert records.split() == ["pipeline.records_per_job.genstream-processors", "9"]
    # The details stay in the document.
    assert not any(line.startswith("pipeline.records ") for line in lines)
