"""How big each workload is: the full run (``make bench``) and the quick smoke run."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

__all__ = ["BenchConfig", "from_environment"]


@dataclass(frozen=True, slots=True)
class BenchConfig:
    quick: bool
    repetitions: int
    """Runs per figure; each figure is the median, with the smallest and largest run."""
    submit_rates: tuple[int, ...]
    """Offered rates, ascending; past the first rate the API cannot hold only the rates in
    ``submit_required_rates`` still run."""
    submit_required_rates: tuple[int, ...]
    submit_duration_s: float
    api_workers: int
    """uvicorn worker processes of the API (and of the peer's endpoint)."""
    load_connections: int
    """Most keep-alive connections the load generator opens."""
    dispatch_rate: int
    dispatch_duration_s: float
    workers: int
    """Worker processes for dispatch and pipeline (Celery: prefork concurrency)."""
    pipeline_seconds: float
    """Each run hands over as many jobs as a pilot run says take this long to complete."""
    pipeline_max_jobs: int
    pipeline_timeout_s: float
    priority_backlog: int
    priority_step_ms: int
    priority_pro_load: float
    """Pro arrival rate as a fraction of one worker's capacity (1000 / step_ms per second)."""
    priority_phase_s: float
    fairness_backlog: int
    """Jobs one user queues on one worker before another user of the tier submits one."""
    fairness_step_ms: int
    overhead_jobs: int
    overhead_step_ms: int
    overhead_steps: int
    users: int
    """Pro users (submissions rotate over their API keys) and as many free users."""
    sse_clients: tuple[int, ...]
    """Event stream clients on one API process, one run (set of repetitions) per count."""
    sse_clients_per_user: int
    sse_client_event_rate: float
    """Events each client receives per second (progress of its user's jobs)."""
    sse_duration_s: float
    sse_client_processes: int
    sse_connect_per_s: float
    """Streams opened per second, over all client processes."""
    replay_events: int
    """Lifecycle events in the log that ``genstream replay rebuild`` replays."""
    replay_users: int
    replay_timeout_s: float
    profile: bool
    """Record py-spy profiles of the services during dispatch and pipeline."""
    broker_requests: bool
    """Count the requests the brokers answer for genstream's clients in dispatch and pipeline
    (their request log turned on for the run, which costs the brokers CPU)."""
    run_peer: bool

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FULL = BenchConfig(
    quick=False,
    repetitions=3,
    submit_rates=(100, 250, 500, 1000, 2000, 2500, 3000, 4000),
    submit_required_rates=(500, 1000),
    submit_duration_s=8.0,
    api_workers=2,
    load_connections=256,
    dispatch_rate=100,
    dispatch_duration_s=10.0,
    workers=4,
    pipeline_seconds=20.0,
    pipeline_max_jobs=40_000,
    pipeline_timeout_s=120.0,
    priority_backlog=5000,
    priority_step_ms=50,
    priority_pro_load=0.5,
    priority_phase_s=15.0,
    fairness_backlog=1000,
    fairness_step_ms=20,
    overhead_jobs=30,
    overhead_step_ms=50,
    overhead_steps=4,
    users=100,
    sse_clients=(1000, 10_000),
    sse_clients_per_user=10,
    sse_client_event_rate=0.2,
    sse_duration_s=20.0,
    sse_client_processes=2,
    sse_connect_per_s=1000.0,
    replay_events=1_000_000,
    replay_users=1000,
    replay_timeout_s=900.0,
    profile=False,
    broker_requests=False,
    run_peer=True,
)

QUICK = dataclasses.replace(
    FULL,
    quick=True,
    repetitions=1,
    submit_rates=(250, 500, 1000, 2000),
    submit_duration_s=2.0,
    dispatch_duration_s=4.0,
    pipeline_seconds=5.0,
    pipeline_timeout_s=60.0,
    priority_backlog=1000,
    priority_phase_s=4.0,
    fairness_backlog=200,
    overhead_jobs=8,
    users=20,
    sse_clients=(1000,),
    sse_duration_s=8.0,
    replay_events=100_000,
    replay_users=200,
)


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def from_environment(environ: dict[str, str] | None = None) -> BenchConfig:
    """The full or quick configuration (``BENCH_QUICK``), with ``BENCH_*`` overrides."""
    env = dict(os.environ if environ is None else environ)
    config = QUICK if _flag(env.get("BENCH_QUICK")) else FULL
    overrides: dict[str, Any] = {}
    if "BENCH_REPETITIONS" in env:
        overrides["repetitions"] = int(env["BENCH_REPETITIONS"])
    if "BENCH_WORKERS" in env:
        overrides["workers"] = int(env["BENCH_WORKERS"])
    if "BENCH_API_WORKERS" in env:
        overrides["api_workers"] = int(env["BENCH_API_WORKERS"])
    if "BENCH_SUBMIT_RATES" in env:
        overrides["submit_rates"] = tuple(int(r) for r in env["BENCH_SUBMIT_RATES"].split(","))
    if "BENCH_DISPATCH_RATE" in env:
        overrides["dispatch_rate"] = int(env["BENCH_DISPATCH_RATE"])
    if "BENCH_SSE_CLIENTS" in env:
        overrides["sse_clients"] = tuple(int(n) for n in env["BENCH_SSE_CLIENTS"].split(","))
    if "BENCH_REPLAY_EVENTS" in env:
        overrides["replay_events"] = int(env["BENCH_REPLAY_EVENTS"])
    if "BENCH_PROFILE" in env:
        overrides["profile"] = _flag(env["BENCH_PROFILE"])
    if "BENCH_BROKER_REQUESTS" in env:
        overrides["broker_requests"] = _flag(env["BENCH_BROKER_REQUESTS"])
    if "BENCH_PEER" in env:
        overrides["run_peer"] = _flag(env["BENCH_PEER"])
    return dataclasses.replace(config, **overrides)
