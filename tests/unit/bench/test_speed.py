"""The machine speed probe: a process of its own notes the CPU time of a fixed piece of work,
and a run reads the median of the probes taken while it ran."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from bench import speed


def test_a_probe_costs_cpu_time_of_its_own() -> None:
    assert 0 < speed.probe_cpu_ms() < 5_000


def test_a_run_reads_the_median_of_the_probes_taken_while_it_ran(tmp_path: Path) -> None:
    assert speed.reading(0, time.time()) == {}  # no probing process: nothing to report
    began = time.time()
    with speed.SpeedProbe(tmp_path / "speed.txt") as probe:
        deadline = time.monotonic() + 30
        while probe.median_ms(began, time.time()) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert speed.reading(began, time.time())["probe_ms"] > 0
    ended = time.time()
    assert speed.reading(began, ended) == {}  # the probe stopped with its block

    probes = [line.split() for line in (tmp_path / "speed.txt").read_text().splitlines()]
    noted = [float(ms) for at, ms in probes if began <= float(at) <= ended]
    assert noted
    assert probe.median_ms(began, ended) == statistics.median(noted)
    assert probe.median_ms(0, began - 1) is None
