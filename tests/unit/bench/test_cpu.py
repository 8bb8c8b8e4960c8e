"""CPU accounting by component: ancestry, command names, and per-job figures."""

from __future__ import annotations

import os

from bench import cpu
from bench.cpu import _Stat, component_of, cpu_ms_per_job


def _stats(*rows: tuple[int, int, str]) -> dict[int, _Stat]:
    return {pid: _Stat(pid=pid, ppid=ppid, command=command, ticks=0) for pid, ppid, command in rows}


def test_a_child_counts_for_its_nearest_named_ancestor() -> None:
    stats = _stats((1, 0, "init"), (10, 1, "python"), (11, 10, "python"), (12, 11, "python"))
    named = {10: "api", 11: "worker"}
    assert component_of(12, stats, named) == "worker"
    assert component_of(11, stats, named) == "worker"


def test_an_unnamed_process_counts_by_what_it_runs() -> None:
    stats = _stats((1, 0, "init"), (20, 1, "java"), (21, 1, "postgres"), (22, 1, "bash"))
    assert component_of(20, stats, {}) == "kafka"
    assert component_of(21, stats, {}) == "postgres"
    assert component_of(22, stats, {}) == "other"


def test_a_parent_loop_does_not_hang() -> None:
    stats = _stats((30, 31, "python"), (31, 30, "python"))
    assert component_of(30, stats, {}) == "other"


def test_cpu_per_job_is_the_difference_largest_first() -> None:
    ticks = cpu._TICKS_PER_S
    before = {1: ("kafka", 0), 2: ("worker", ticks), 3: ("worker", 0)}
    # pid 4 started during the run and counts whole; pid 3 exited and is missed.
    after = {1: ("kafka", ticks), 2: ("worker", 3 * ticks), 4: ("worker", ticks)}
    assert cpu_ms_per_job(before, after, 1000) == {"worker": 3.0, "kafka": 1.0}
    assert list(cpu_ms_per_job(before, after, 1000)) == ["worker", "kafka"]
    assert cpu_ms_per_job(before, after, 0) == {}


def test_sampling_this_machine_finds_this_process_under_its_name() -> None:
    sampled = cpu.sample({os.getpid(): "bench"})
    assert sampled[os.getpid()][0] == "bench"
    assert all(ticks >= 0 for _, ticks in sampled.values())


def test_the_total_adds_every_component_but_the_benchmarks_own() -> None:
    per_job = {"processors": 4.5, "worker": 3.25, "kafka": 2.0, "bench": 0.7, "other": 0.125}
    assert cpu.with_total(per_job) == {**per_job, "total": 9.875}
    assert list(cpu.with_total(per_job))[-1] == "total"
    # Added once: a total already there is not counted in the next one.
    assert cpu.with_total(cpu.with_total(per_job))["total"] == 9.875
    assert cpu.with_total({}) == {}
