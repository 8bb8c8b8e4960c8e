"""py-spy profiles of the services while a workload runs, summed up by function.

``py-spy record --format raw`` writes collapsed stacks (``frame;frame;... count``); the
summary lists the functions with the most samples on top of the stack (self) and anywhere
on it (inclusive), as shares of all samples of that service.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Profiler", "top_frames"]


def top_frames(collapsed: Iterable[str], limit: int = 15) -> dict[str, Any]:
    """Self and inclusive sample shares of the busiest frames in collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame for frame in stack.split(";") if frame]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def shares(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"frame": frame, "share": round(count / total, 4), "samples": count}
            for frame, count in counter.most_common(limit)
        ]

    return {"samples": total, "self": shares(own), "inclusive": shares(inclusive)}


@dataclass
class Profiler:
    """Starts py-spy on processes for a number of seconds; ``summary`` reads the results."""

    out_dir: Path
    enabled: bool
    rate_hz: int = 100
    _running: list[tuple[str, Path, subprocess.Popen[bytes]]] = field(default_factory=list)

    def record(self, label: str, pids: dict[str, int], seconds: float) -> None:
        if not self.enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            path = self.out_dir / f"{label}-{name}.txt"
            command = [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--pid",
                str(pid),
                "--subprocesses",
                "--nonblocking",
                "--format",
                "raw",
                "--rate",
                str(self.rate_hz),
                "--duration",
                str(max(1, round(seconds))),
                "--output",
                str(path),
            ]
            process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            self._running.append((f"{label}/{name}", path, process))

    def summary(self) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for key, path, process in self._running:
            try:
                process.wait(120)
            except subprocess.TimeoutExpired:
                process.kill()
            if path.exists():
                results[key] = {"file": str(path), **top_frames(path.read_text().splitlines())}
        self._running.clear()
        return results
