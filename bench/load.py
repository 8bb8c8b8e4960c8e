"""Runs the load generator in its own process and reads back what it measured."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.httpload import LoadSpec
from bench.procs import ROOT
from bench.stats import percentile
from bench.system import Endpoint

__all__ = ["LoadRun", "run_open_loop"]


@dataclass(frozen=True, slots=True)
class LoadRun:
    offered_per_s: float
    duration_s: float
    scheduled: list[float]
    """Wall-clock send time of each request as scheduled."""
    status: list[int]
    latency_ms: list[float | None]
    send_lag_ms: list[float | None]
    generator_lag_ms: list[float]
    sent: int
    send_span_s: float
    ids: list[str | None]

    @property
    def ok_latencies(self) -> list[float]:
        return [
            lat
            for lat, status in zip(self.latency_ms, self.status, strict=True)
            if lat is not None and 200 <= status < 300
        ]

    @property
    def errors(self) -> int:
        return sum(1 for status in self.status if not 200 <= status < 300)

    def achieved_per_s(self) -> float:
        """Successful answers per second, from the first scheduled send to the last answer."""
        ok = [
            sched + lat / 1000
            for sched, lat, status in zip(self.scheduled, self.latency_ms, self.status, strict=True)
            if lat is not None and 200 <= status < 300
        ]
        if not ok or not self.scheduled:
            return 0.0
        span = max(max(ok) - self.scheduled[0], self.duration_s)
        return len(ok) / span

    def generator_send_per_s(self) -> float:
        return self.sent / self.send_span_s if self.send_span_s > 0 else 0.0

    def send_lag_p99_ms(self) -> float:
        """How late requests went out, waiting for a free connection included."""
        return percentile([lag for lag in self.send_lag_ms if lag is not None], 99)

    def generator_lag_p99_ms(self) -> float:
        """How late the generator got to requests: its own health, whatever the server does."""
        return percentile(self.generator_lag_ms, 99)


def run_open_loop(
    endpoint: Endpoint,
    *,
    rate_per_s: float,
    duration_s: float,
    connections: int,
    keep_ids: bool = False,
    timeout_s: float = 10.0,
) -> LoadRun:
    spec = LoadSpec(
        host=endpoint.host,
        port=endpoint.port,
        path=endpoint.path,
        body=endpoint.body,
        bearer_tokens=endpoint.tokens,
        rate_per_s=rate_per_s,
        duration_s=duration_s,
        # Time for the generator to start before its first send.
        start_at=time.time() + 1.5,
        connections=connections,
        timeout_s=timeout_s,
        keep_ids=keep_ids,
    )
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(dataclasses.asdict(spec)))
        subprocess.run(
            [sys.executable, "-m", "bench.httpload", str(spec_path), str(out_path)],
            cwd=ROOT,
            check=True,
            timeout=duration_s + timeout_s + 60,
        )
        raw: dict[str, Any] = json.loads(out_path.read_text())
    return LoadRun(
        offered_per_s=raw["offered_per_s"],
        duration_s=raw["duration_s"],
        scheduled=raw["scheduled"],
        status=raw["status"],
        latency_ms=raw["latency_ms"],
        send_lag_ms=raw["send_lag_ms"],
        generator_lag_ms=raw["generator_lag_ms"],
        sent=raw["sent"],
        send_span_s=raw["send_span_s"],
        ids=raw["ids"],
    )
