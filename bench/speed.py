"""How fast the machine runs a fixed piece of Python, sampled all through a benchmark run.

On a shared virtual machine the same work can take twice the CPU time from one minute to
the next: other tenants of the host share its cores and caches, and that does not show as
steal or load. A process of its own runs a fixed probe (JSON round trips and integer
arithmetic) every ``INTERVAL_S`` and notes the CPU time it took; a measured run reports
``probe_ms``, the median of the probes taken while it ran. CPU figures of runs whose
``probe_ms`` differ are not comparable as they are: the same work cost that much more.

``python -m bench.speed PATH`` is the probing process; it appends ``<unix time> <cpu ms>``
lines to PATH until it is stopped.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

__all__ = ["INTERVAL_S", "SpeedProbe", "probe_cpu_ms", "reading"]

INTERVAL_S: Final = 1.0
"""Between probes; a probe takes about 10 ms of one core, 1 % of this machine's two."""
_DOCUMENT: Final = {"job": "a" * 36, "steps": list(range(20)), "input": {"prompt": "x" * 40}}

_current: SpeedProbe | None = None


def probe_cpu_ms() -> float:
    """The CPU time, in ms, of one fixed piece of work in this process."""
    began = time.process_time()
    for _ in range(800):
        json.loads(json.dumps(_DOCUMENT))
    sum(i * i for i in range(80_000))
    return (time.process_time() - began) * 1000


class SpeedProbe:
    """The probing process, and the probes it took within a window of time."""

    def __init__(self, path: Path) -> None:
        self._path = path
        path.write_text("")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.speed", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def median_ms(self, start: float, end: float) -> float | None:
        """The median probe taken between two ``time.time()`` readings, if any was."""
        probes = []
        for line in self._path.read_text().splitlines():
            at, _, ms = line.partition(" ")
            try:
                if start <= float(at) <= end:
                    probes.append(float(ms))
            except ValueError:
                continue  # a line being written
        return statistics.median(probes) if probes else None

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(10)

    def __enter__(self) -> SpeedProbe:
        global _current
        _current = self
        return self

    def __exit__(self, *exc: object) -> None:
        global _current
        _current = None
        self.stop()


def reading(start: float, end: float) -> dict[str, float]:
    """``{"probe_ms": ...}`` for a run between two ``time.time()`` readings while a probe
    runs; empty otherwise."""
    if _current is None:
        return {}
    ms = _current.median_ms(start, end)
    return {} if ms is None else {"probe_ms": round(ms, 2)}


def main() -> None:
    path = Path(sys.argv[1])
    with path.open("a") as out:
        while True:
            ms = probe_cpu_ms()
            out.write(f"{time.time():.3f} {ms:.3f}\n")
            out.flush()
            time.sleep(INTERVAL_S)


if __name__ == "__main__":
    main()
