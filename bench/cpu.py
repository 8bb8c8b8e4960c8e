"""CPU time spent by each part of the system over a measured run, read from ``/proc``.

Every process on the machine is put down to a component: the nearest ancestor among the
named processes (a service the benchmark started, keeping its children: uvicorn's workers,
Celery's pool), or else what it runs (the Kafka broker, PostgreSQL, MinIO, Redis), or
``other``. A run's figure for a component is the user + system CPU its processes used
between two samples; a process that exits between them is missed, as is what one starts
and ends in between (short-lived, so little). ``total`` adds up every component but the
benchmark's own (``bench``), which is reported on its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["OWN", "TOTAL", "CpuSample", "component_of", "cpu_ms_per_job", "sample", "with_total"]

_PROC: Final = Path("/proc")
_TICKS_PER_S: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
OWN: Final = "bench"
"""The component of the benchmark's own processes (its clients, its probe)."""
TOTAL: Final = "total"
_COMMANDS: Final = {
    "java": "kafka",
    "postgres": "postgres",
    "minio": "minio",
    "redis-server": "redis",
}


@dataclass(frozen=True, slots=True)
class _Stat:
    pid: int
    ppid: int
    command: str
    ticks: int


CpuSample = dict[int, tuple[str, int]]
"""Per process: its component and its CPU ticks so far."""


def _read_stat(pid: int) -> _Stat | None:
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command is in parentheses and may itself hold spaces and parentheses.
    open_at, close_at = raw.find("("), raw.rfind(")")
    if open_at < 0 or close_at < 0:
        return None
    fields = raw[close_at + 2 :].split()
    # After the command: state, ppid, ... utime is field 14 and stime 15 of stat(5).
    return _Stat(
        pid=pid,
        ppid=int(fields[1]),
        command=raw[open_at + 1 : close_at],
        ticks=int(fields[11]) + int(fields[12]),
    )


def component_of(pid: int, stats: Mapping[int, _Stat], named: Mapping[int, str]) -> str:
    """The named ancestor's name, else what the process runs, else ``other``."""
    seen = set()
    current: int | None = pid
    while current is not None and current not in seen and current in stats:
        if current in named:
            return named[current]
        seen.add(current)
        current = stats[current].ppid
    return _COMMANDS.get(stats[pid].command, "other")


def sample(named: Mapping[int, str]) -> CpuSample:
    """Every process's component and CPU so far; ``named`` maps service pids to names."""
    stats = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            stat = _read_stat(int(entry.name))
            if stat is not None:
                stats[stat.pid] = stat
    return {pid: (component_of(pid, stats, named), stat.ticks) for pid, stat in stats.items()}


def cpu_ms_per_job(before: CpuSample, after: CpuSample, jobs: int) -> dict[str, float]:
    """CPU milliseconds per job of each component between the samples, largest first."""
    totals: dict[str, int] = {}
    for pid, (component, ticks) in after.items():
        earlier = before.get(pid)
        used = ticks - earlier[1] if earlier is not None else ticks
        # A pid reused by another process in between would count that one whole; a new
        # process counts from its start, which is inside the run.
        totals[component] = totals.get(component, 0) + max(used, 0)
    if jobs <= 0:
        return {}
    per_job = {name: round(ticks * 1000 / _TICKS_PER_S / jobs, 3) for name, ticks in totals.items()}
    return dict(sorted(per_job.items(), key=lambda item: -item[1]))


def with_total(per_job: Mapping[str, float]) -> dict[str, float]:
    """``per_job`` and its ``total``: every component's CPU a job but the benchmark's own."""
    if not per_job:
        return {}
    total = sum(ms for name, ms in per_job.items() if name not in (OWN, TOTAL))
    return {**per_job, TOTAL: round(total, 3)}
