"""genstream's groups, topics and counted readers under the names they have outside a run."""

from __future__ import annotations

from bench.counters import counter_value
from bench.genstream_meter import CONTROL_COUNTER, RunNames

_NAMES = RunNames(prefix="bench.r1.", app_id="bench-processors-r1", clock="bench-clock-r1")


def test_the_runs_groups_by_their_names_outside_the_benchmark() -> None:
    assert _NAMES.group("bench-processors-r1") == "genstream-processors"
    assert _NAMES.group("bench.r1.genstream-workers-synthetic") == "genstream-workers-synthetic"
    assert _NAMES.group("bench.r1.genstream-retry-relay") == "genstream-retry-relay"
    assert _NAMES.group("bench-clock-r1") == "bench-clock"
    # The benchmark's own setup reader, another run's groups and everyone else's are not.
    assert _NAMES.group("bench-processors-r1-reader") is None
    assert _NAMES.group("bench.r2.genstream-workers-synthetic") is None
    assert _NAMES.group("genstream-projection") is None


def test_the_runs_topics_by_their_names_outside_the_benchmark() -> None:
    assert _NAMES.topic("bench.r1.jobs.lifecycle") == "jobs.lifecycle"
    assert _NAMES.topic("sink.bench.r1.jobs.requested") == "sink.jobs.requested"
    assert (
        _NAMES.topic("bench-processors-r1-accounts-changelog")
        == "genstream-processors-accounts-changelog"
    )
    assert _NAMES.topic("jobs.lifecycle") is None


def test_job_controls_count_is_read_from_the_workers_exposition() -> None:
    exposition = (
        "# HELP genstream_worker_control_records_total Records job control read\n"
        "# TYPE genstream_worker_control_records_total counter\n"
        "genstream_worker_control_records_total 1234.0\n"
        "genstream_worker_control_records_created 1.7e9\n"
        'genstream_worker_jobs_total{outcome="completed"} 7.0\n'
    )
    assert counter_value(exposition, CONTROL_COUNTER) == 1234.0
    assert counter_value(exposition, "genstream_worker_jobs_total") == 7.0
    assert counter_value(exposition, "genstream_missing_total") is None
