"""Records a system's readers read per job over a workload's run.

A reader is a consumer group, measured from its committed offsets (``bench.groups``), or a
reader that commits nothing and counts what it reads itself (a counter a service exports,
summed over its processes). ``records_per_job.<reader>`` is what it read between two
snapshots divided by the jobs run between them; ``records_per_job.services_total`` adds up
every reader but the benchmark's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from bench.groups import Positions, at_end, read_by_topic, written_by_topic

__all__ = ["BENCH_READERS", "CLOCK", "PREFIX", "SERVICES_TOTAL", "Reads", "records_section"]

PREFIX: Final = "records_per_job."
SERVICES_TOTAL: Final = "services_total"
CLOCK: Final = "bench-clock"
"""The benchmark's reader of the lifecycle, which times events on arrival."""
BENCH_READERS: Final = frozenset({CLOCK})
"""The benchmark's own readers, left out of the services' total."""


@dataclass(frozen=True, slots=True)
class Reads:
    """What a system's readers had read at one moment."""

    positions: Positions
    counted: Mapping[str, Mapping[str, float]]
    """Readers that commit nothing: per reader, its processes' counts (by process)."""
    settled: bool
    """No group's commits had moved for a while (see ``bench.groups``) when read."""


def records_read(before: Reads, after: Reads) -> dict[str, int]:
    """Records each reader read between the snapshots. A counted reader whose processes
    are not the same in both (one restarted, one missing) is left out: unmeasured."""
    read = {
        group: sum(topics.values())
        for group, topics in read_by_topic(before.positions, after.positions).items()
    }
    for reader, processes in after.counted.items():
        earlier = before.counted.get(reader)
        if earlier is not None and set(earlier) == set(processes):
            read[reader] = round(sum(processes[p] - earlier[p] for p in processes))
    return read


def per_job(read: Mapping[str, int], jobs: int) -> dict[str, float]:
    """``records_per_job.<reader>`` and the services' total; empty without jobs."""
    if jobs <= 0 or not read:
        return {}
    figures = {f"{PREFIX}{name}": round(count / jobs, 3) for name, count in sorted(read.items())}
    services = sum(count for reader, count in read.items() if reader not in BENCH_READERS)
    figures[f"{PREFIX}{SERVICES_TOTAL}"] = round(services / jobs, 3)
    return figures


def records_section(before: Reads, after: Reads, jobs: int) -> dict[str, object]:
    """A workload's figures (``records_per_job.*``) and their details under ``records``:
    the jobs divided by, whether both edges had settled and had every group at the end of
    what it reads, and per job what each group read of each topic and what was written to
    each topic."""

    def each(counts: Mapping[str, int]) -> dict[str, float]:
        return {name: round(count / jobs, 3) for name, count in sorted(counts.items())}

    if jobs <= 0:
        return {}
    by_topic = read_by_topic(before.positions, after.positions)
    return {
        **per_job(records_read(before, after), jobs),
        "records": {
            "jobs": jobs,
            "settled": before.settled and after.settled,
            "at_end": at_end(before.positions) and at_end(after.positions),
            "read_per_job_by_topic": {group: each(t) for group, t in sorted(by_topic.items())},
            "written_per_job": each(written_by_topic(before.positions, after.positions)),
        },
    }
