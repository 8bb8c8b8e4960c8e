"""Records per job: committed-offset deltas and counted readers, divided by the jobs run."""

from __future__ import annotations

from bench.groups import Positions
from bench.reads import Reads, per_job, records_read, records_section

_ENDS = {("jobs.lifecycle", 0): 400, ("jobs.requested", 0): 100}


def _reads(
    committed: dict[str, dict[tuple[str, int], int]],
    counted: dict[str, dict[str, float]] | None = None,
    *,
    ends: dict[tuple[str, int], int] = _ENDS,
    settled: bool = True,
) -> Reads:
    positions = Positions(committed=committed, starts=dict.fromkeys(ends, 0), ends=ends)
    return Reads(positions=positions, counted=counted or {}, settled=settled)


def test_groups_and_counted_readers_read_their_deltas() -> None:
    before = _reads(
        {"genstream-processors": {("jobs.lifecycle", 0): 0}, "bench-clock": {}},
        {"genstream-worker-control": {"worker-0:11": 5.0, "worker-1:12": 5.0}},
        ends={("jobs.lifecycle", 0): 0, ("jobs.requested", 0): 0},
    )
    after = _reads(
        {
            "genstream-processors": {("jobs.lifecycle", 0): 400, ("jobs.requested", 0): 100},
            "bench-clock": {("jobs.lifecycle", 0): 400},
        },
        {"genstream-worker-control": {"worker-0:11": 505.0, "worker-1:12": 505.0}},
    )
    assert records_read(before, after) == {
        "genstream-processors": 500,
        "bench-clock": 400,
        "genstream-worker-control": 1000,
    }


def test_a_counted_reader_whose_processes_changed_is_not_measured() -> None:
    before = _reads({}, {"genstream-worker-control": {"worker-0:11": 5.0}})
    restarted = _reads({}, {"genstream-worker-control": {"worker-0:99": 7.0}})
    missing = _reads({})
    assert records_read(before, restarted) == {}
    assert records_read(before, missing) == {}


def test_per_job_with_the_services_total_leaving_out_the_benchmarks_reader() -> None:
    figures = per_job(
        {"genstream-processors": 900, "genstream-worker-control": 3600, "bench-clock": 400}, 100
    )
    assert figures == {
        "records_per_job.bench-clock": 4.0,
        "records_per_job.genstream-processors": 9.0,
        "records_per_job.genstream-worker-control": 36.0,
        "records_per_job.services_total": 45.0,
    }
    assert per_job({"genstream-processors": 900}, 0) == {}
    assert per_job({}, 100) == {}


def test_a_section_has_the_figures_and_the_details_per_topic() -> None:
    before = _reads({}, ends={("jobs.lifecycle", 0): 0, ("jobs.requested", 0): 0})
    after = _reads(
        {"genstream-processors": {("jobs.lifecycle", 0): 400, ("jobs.requested", 0): 100}},
        settled=False,
    )
    section = records_section(before, after, 100)
    assert section["records_per_job.genstream-processors"] == 5.0
    assert section["records_per_job.services_total"] == 5.0
    assert section["records"] == {
        "jobs": 100,
        "settled": False,
        "at_end": True,
        "read_per_job_by_topic": {
            "genstream-processors": {"jobs.lifecycle": 4.0, "jobs.requested": 1.0}
        },
        "written_per_job": {"jobs.lifecycle": 4.0, "jobs.requested": 1.0},
    }
    assert records_section(before, after, 0) == {}
