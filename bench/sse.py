"""The ``sse`` workload: thousands of open event streams on one API process.

Clients (``bench.sseclient``, split over a few processes) each open ``GET /v1/events`` as one
of the run's users, ten clients a user, at a bounded rate. Once every stream is open,
progress events of those users' jobs are written to the progress topic on a fixed schedule,
each stamped with its scheduled time; every API process reads that topic and fans each
event out to its user's streams. Latency is a client's receipt minus that stamp: producer,
broker, the API's feed and the stream's write all count. Memory is the API process's
resident set once the streams are open and the events have flowed, less what it held
before they opened, per client.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

from bench.config import BenchConfig
from bench.genstream_system import SOURCE, GenstreamSystem
from bench.procs import ROOT
from bench.schedule import open_loop_schedule
from bench.sseclient import ClientSpec, raise_fd_limit
from bench.stats import latency_summary
from bench.workloads import combine
from contracts import Envelope, JobProgress

__all__ = ["delivery_latencies_ms", "rss_kib", "run_sse"]

_log = logging.getLogger("bench")

_GRACE_S: Final = 3.0
"""Deliveries later than this after the last event's time are counted as missing."""
_WARM_CLIENTS: Final = 20


def rss_kib(pid: int) -> int:
    """Resident set of a process, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def delivery_latencies_ms(pairs: Sequence[Sequence[float]], *, since: float) -> list[float]:
    """Receipt minus stamp, in ms, of the (stamp, receipt) pairs of events stamped at or after
    ``since`` (earlier ones belong to the warm-up)."""
    return [(arrived - sent) * 1000 for sent, arrived in pairs if sent >= since]


@dataclass
class _ClientProcess:
    popen: subprocess.Popen[str]
    out: Path

    def ready(self, timeout_s: float) -> tuple[int, int]:
        assert self.popen.stdout is not None
        line = _read_line(self.popen.stdout, timeout_s)
        parts = line.split()
        if len(parts) != 3 or parts[0] != "ready":
            raise RuntimeError(f"SSE client process said {line!r}")
        return int(parts[1]), int(parts[2])

    def stop(self) -> dict[str, Any]:
        assert self.popen.stdin is not None
        self.popen.stdin.write("stop\n")
        self.popen.stdin.flush()
        self.popen.wait(60)
        result: dict[str, Any] = json.loads(self.out.read_text())
        return result

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


def _read_line(stream: IO[str], timeout_s: float) -> str:
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            raise TimeoutError(f"no answer from an SSE client process within {timeout_s:.0f}s")
    return stream.readline().strip()


def _start_clients(spec: ClientSpec, processes: int, tmp: Path) -> list[_ClientProcess]:
    started = []
    share = math.ceil(spec.clients / processes)
    for index in range(processes):
        count = min(share, spec.clients - index * share)
        if count <= 0:
            break
        # Each process takes the tokens of its own clients, in the same rotation.
        offset = index * share
        tokens = [spec.tokens[(offset + i) % len(spec.tokens)] for i in range(count)]
        own = dataclasses.replace(
            spec, clients=count, tokens=tuple(tokens), connect_per_s=spec.connect_per_s / processes
        )
        spec_path, out = tmp / f"spec-{index}.json", tmp / f"out-{index}.json"
        spec_path.write_text(json.dumps(dataclasses.asdict(own)))
        popen = subprocess.Popen(
            [sys.executable, "-m", "bench.sseclient", str(spec_path), str(out)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(_ClientProcess(popen, out))
    return started


class _Progress:
    """Progress events of the users' jobs (one job a user), stamped with their scheduled time."""

    def __init__(self, system: GenstreamSystem, users: list[str]) -> None:
        self._system = system
        self._users = users
        self._jobs = [f"job_sse{uuid.uuid4().hex}" for _ in users]
        self._sent = 0

    def send(self, rate_per_s: float, duration_s: float) -> tuple[float, int]:
        """Writes events on an open-loop schedule; returns the first's time and the count."""
        times = open_loop_schedule(rate_per_s, duration_s, start=time.time() + 0.5)
        spec = self._system.workers_topology.progress
        for at in times:
            time.sleep(max(0.0, at - time.time()))
            index = self._sent % len(self._users)
            self._sent += 1
            data = JobProgress(
                job_id=self._jobs[index],
                attempt=1,
                percent=50.0,
                step=self._sent % 50 + 1,
                total_steps=51,
                message="denoising",
            )
            envelope = Envelope.wrap(
                data,
                user_id=self._users[index],
                source=SOURCE,
                time=datetime.fromtimestamp(at, UTC),
            )
            self._system.producer.produce(spec, envelope)
        self._system.producer.flush()
        return times[0], len(times)


def _one_run(
    system: GenstreamSystem,
    config: BenchConfig,
    spec: ClientSpec,
    users: list[str],
    tmp: Path,
) -> dict[str, float]:
    pid = system.api_pid()
    progress = _Progress(system, users)
    before = rss_kib(pid)
    clients = _start_clients(spec, config.sse_client_processes, tmp)
    try:
        opened = failed = 0
        connect_s = spec.clients / spec.connect_per_s + spec.connect_timeout_s * 2 + 30
        began = time.monotonic()
        for client in clients:
            ok, bad = client.ready(connect_s)
            opened, failed = opened + ok, failed + bad
        open_s = time.monotonic() - began
        connected = rss_kib(pid)
        per_user = config.sse_clients_per_user
        rate = spec.clients * config.sse_client_event_rate / per_user
        first, events = progress.send(rate, config.sse_duration_s)
        time.sleep(_GRACE_S)  # a fixed window: what arrives later counts as not delivered
        after = rss_kib(pid)
        results = [client.stop() for client in clients]
    finally:
        for client in clients:
            client.kill()
    latencies: list[float] = []
    for result in results:
        latencies += delivery_latencies_ms(result["progress"], since=first)
    summary = latency_summary(latencies)
    expected = events * per_user
    return {
        "p50_ms": float(summary["p50_ms"]),
        "p90_ms": float(summary["p90_ms"]),
        "p99_ms": float(summary["p99_ms"]),
        "max_ms": float(summary["max_ms"]),
        "rss_kib_per_client": (after - before) / spec.clients,
        "rss_kib_per_client_open": (connected - before) / spec.clients,
        "api_rss_mib": after / 1024,
        "delivered": len(latencies) / expected if expected else math.nan,
        "deliveries": float(len(latencies)),
        "events_per_s": rate,
        "open_s": open_s,
        "streams_open": float(opened),
        "streams_failed": float(failed),
        "closed_by_server": float(sum(r["closed_early"] for r in results)),
    }


def _warm_up(system: GenstreamSystem, spec: ClientSpec, users: list[str], tmp: Path) -> None:
    """A few streams and events first: the API's event hub and its progress feed start with
    the first stream, and should not count as the clients' memory."""
    warm = dataclasses.replace(spec, clients=_WARM_CLIENTS, tokens=spec.tokens[:_WARM_CLIENTS])
    clients = _start_clients(warm, 1, tmp)
    try:
        clients[0].ready(60)
        _Progress(system, users[:2]).send(20, 1.0)
        clients[0].stop()
    finally:
        for client in clients:
            client.kill()


def run_sse(system: GenstreamSystem, config: BenchConfig) -> dict[str, Any]:
    raise_fd_limit()  # inherited by the API process started next
    per_user = config.sse_clients_per_user
    users = [str(uuid.uuid4()) for _ in range(max(config.sse_clients) // per_user)]
    tokens = system.add_api_users(users)
    sizes = []
    with tempfile.TemporaryDirectory(prefix="bench-sse-") as tmp_name:
        tmp = Path(tmp_name)
        for count in config.sse_clients:
            mine = count // per_user
            runs = []
            for _ in range(config.repetitions):
                # A fresh API process each time: one that served a run before keeps the
                # memory it grew then, and the next run's growth would read as nothing.
                endpoint = system.start_api(purpose="events")
                try:
                    spec = ClientSpec(
                        host=endpoint.host,
                        port=endpoint.port,
                        path="/v1/events",
                        tokens=tuple(tokens[:mine]),
                        clients=count,
                        connect_per_s=config.sse_connect_per_s,
                        # Opening is paced by the server; on a busy machine it takes its time.
                        connect_timeout_s=60 + count * 0.05,
                    )
                    _warm_up(system, spec, users[:mine], tmp)
                    runs.append(_one_run(system, config, spec, users[:mine], tmp))
                finally:
                    system.stop_api()
                _log.info("genstream sse %d clients: %s", count, _brief(runs[-1]))
            keys = tuple(runs[0])
            sizes.append({"clients": count, **combine(runs, keys)})
    return _section(sizes)


def _section(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    """Headline figures of the largest count, every count under ``sizes``."""
    largest = max(sizes, key=lambda entry: entry["clients"])
    headline = ("p50_ms", "p99_ms", "rss_kib_per_client", "delivered")
    section: dict[str, Any] = {"clients": largest["clients"]}
    section.update({key: largest[key] for key in headline})
    for entry in sizes:
        for key in ("p50_ms", "p99_ms", "rss_kib_per_client"):
            section[f"{key}_at_{entry['clients']}"] = entry[key]
    section["spread"] = {key: largest["spread"][key] for key in headline}
    section["sizes"] = sizes
    return section


def _brief(run: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in run.items())
