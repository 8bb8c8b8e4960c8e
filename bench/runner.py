"""One benchmark run: genstream's workloads, then the peer's, then the document and table."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.config import BenchConfig
from bench.machine import describe_machine
from bench.procs import ROOT
from bench.profiling import Profiler
from bench.report import build_document, render_table
from bench.speed import SpeedProbe
from bench.workloads import (
    run_dispatch,
    run_fairness,
    run_overhead,
    run_pipeline,
    run_priority,
    run_submit,
)
from genstream.tracing import tracing_setting

__all__ = ["run_benchmark"]

_log = logging.getLogger("bench")
ALL = ("submit", "dispatch", "sse", "pipeline", "overhead", "priority", "fairness", "replay")
_SERVICES = {"submit", "dispatch", "pipeline", "overhead", "priority", "fairness"}
"""The workloads that need the stream processors and the users' accounts in them."""
_GENSTREAM_ONLY = {"sse", "overhead", "replay"}


def _guarded(results: dict[str, Any], name: str, work: Callable[[], dict[str, Any]]) -> None:
    """Runs one workload; a failure is recorded in its entry and the others still run."""
    began = time.monotonic()
    _log.info("---- %s", name)
    try:
        results[name] = work()
    except Exception as error:
        _log.error("%s failed:\n%s", name, traceback.format_exc())
        results[name] = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    results[name]["elapsed_s"] = round(time.monotonic() - began, 1)


def _not_run(results: dict[str, Any], chosen: set[str], error: Exception) -> None:
    """A step between workloads failed: the workloads that did not run say why."""
    _log.error("the run broke off:\n%s", traceback.format_exc())
    for name in chosen - set(results):
        results[name] = {"status": "failed", "error": f"{type(error).__name__}: {error}"}


def _close(system: Any) -> None:
    try:
        system.close()
    except Exception:
        _log.error("cleaning up failed:\n%s", traceback.format_exc())


def _genstream(
    config: BenchConfig, run_id: str, run_dir: Path, only: set[str], profiler: Profiler
) -> dict[str, Any]:
    from bench.genstream_system import GenstreamSystem
    from genstream.settings import StackSettings

    results: dict[str, Any] = {}
    system = GenstreamSystem(
        stack=StackSettings(),
        run_id=run_id,
        run_dir=run_dir,
        users=config.users,
        api_port=int(os.environ.get("BENCH_API_PORT", "18080")),
        api_workers=config.api_workers,
        count_requests=config.broker_requests,
    )

    def hook(label: str, seconds: float) -> None:
        profiler.record(label, system.pids(), seconds)

    try:
        system.setup(services=bool(only & _SERVICES))
        if "sse" in only:
            from bench.sse import run_sse

            _guarded(results, "sse", lambda: run_sse(system, config))
        if "submit" in only:
            _guarded(results, "submit", lambda: run_submit(system, config, hook))
        if only & {"dispatch", "pipeline"}:
            system.start_workers(config.workers)
        if "dispatch" in only:
            _guarded(results, "dispatch", lambda: run_dispatch(system, config, hook))
        if "pipeline" in only:
            _guarded(results, "pipeline", lambda: run_pipeline(system, config, hook))
        if "overhead" in only:
            _guarded(results, "overhead", lambda: run_overhead(system, config))
        if "priority" in only:
            _guarded(results, "priority", lambda: run_priority(system, config))
        if "fairness" in only:
            _guarded(results, "fairness", lambda: run_fairness(system, config))
    except Exception as error:
        _not_run(results, only - {"replay"}, error)
    finally:
        _close(system)
    if "replay" in only:
        # After the services are gone: the rebuild has the machine to itself.
        from bench.replay import run_replay

        _guarded(results, "replay", lambda: run_replay(StackSettings(), config, run_id=run_id))
    return results


def _peer(config: BenchConfig, run_dir: Path, only: set[str]) -> dict[str, Any]:
    from bench.peer.system import PeerSystem

    subprocess.run([str(ROOT / "infra" / "redis.sh"), "start"], check=True)
    port = os.environ.get("GENSTREAM_REDIS_PORT", "56379")
    results: dict[str, Any] = {}
    system = PeerSystem(
        broker_url=f"redis://127.0.0.1:{port}/0",
        run_dir=run_dir,
        users=config.users,
        api_port=int(os.environ.get("BENCH_PEER_PORT", "18081")),
        api_workers=config.api_workers,
    )
    try:
        system.setup()
        if "submit" in only:
            _guarded(results, "submit", lambda: run_submit(system, config))
        if only & {"dispatch", "pipeline"}:
            system.start_workers(config.workers)
        if "dispatch" in only:
            _guarded(results, "dispatch", lambda: run_dispatch(system, config))
        if "pipeline" in only:
            _guarded(results, "pipeline", lambda: run_pipeline(system, config))
        if "priority" in only:
            _guarded(results, "priority", lambda: run_priority(system, config))
        if "fairness" in only:
            _guarded(results, "fairness", lambda: run_fairness(system, config))
    except Exception as error:
        _not_run(results, only - _GENSTREAM_ONLY, error)
    finally:
        _close(system)
    return results


def run_benchmark(config: BenchConfig, *, out: Path, only: set[str] | None = None) -> int:
    chosen = only if only else set(ALL)
    run_id = f"{time.strftime('%H%M%S')}{uuid.uuid4().hex[:4]}"
    run_dir = ROOT / "var" / "bench" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    profiler = Profiler(out.parent / "profiles", enabled=config.profile)
    machine = describe_machine()
    began = time.monotonic()
    _log.info("benchmark %s (%s), logs in %s", run_id, "quick" if config.quick else "full", run_dir)
    with SpeedProbe(run_dir / "speed.txt"):
        ours = _genstream(config, run_id, run_dir, chosen, profiler)
        shared = chosen - _GENSTREAM_ONLY
        peer = _peer(config, run_dir, shared) if config.run_peer and shared else {}
    machine["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    notes = [
        "Latencies are measured from each request's scheduled send time (open loop) to the "
        "benchmark's own receipt of the answer or event.",
        "Figures are medians over the runs; spread.<key> has min, max and every run.",
        "genstream's pipeline, priority and overhead jobs are written to jobs.requested "
        "directly, the peer's are apply_async calls: neither goes through HTTP there.",
        "The processors run with a catalog whose concurrency caps are lifted (thousands of "
        "queued jobs per user); prices and tiers are the shipped ones.",
        "sse: one API process; latency from each progress event's scheduled (stamped) time to "
        "a client's receipt; memory is the API's resident set growth per open stream.",
        "probe_ms (dispatch, pipeline): the median CPU time of a fixed piece of Python run every "
        "second by a process of its own during each run (bench/speed.py); on a shared machine "
        "it moves with the CPU every other figure costs, so compare CPU figures at like probe_ms.",
        "replay: events_per_s counts the events of both topics the rebuild replayed, over the "
        "whole genstream replay rebuild command (start, replay, comparison, exit).",
        "cpu_ms_per_job.total (dispatch, pipeline): the sum of every component's CPU a job in "
        "the run (the services, the HTTP submissions' API included, Kafka, PostgreSQL, MinIO, "
        "Redis and other, whatever else ran on the machine, servers the system does not use "
        "included) except the benchmark's own processes, which are cpu_ms_per_job.bench; each "
        "run's total, then the median of the runs. The HTTP load generator exits before a run's "
        "end and is in neither.",
        "records_per_job.<group> (genstream's dispatch and pipeline): records each consumer group "
        "read per job, from its committed offsets per partition before and after the workload "
        "(list_consumer_group_offsets; both edges once no group's commits have moved for 6 s), "
        "summed over every partition it committed, "
        "divided by the jobs handed over (dispatch: warm-up and every run; pipeline: pilot and "
        "every run), so measured once over the whole workload, without spread. Each record "
        "counts once however often it was read. genstream-worker-control (job control, which "
        "commits nothing) is the workers' own count of records read "
        "(genstream_worker_control_records_total), summed over the workers. services_total adds "
        "up every reader but the benchmark's clock (bench-clock). The API's progress feed reads "
        "only while an event stream is open (none is); the projection, webhooks and the outbox "
        "relay are not run by the benchmark. records has the jobs, whether both edges settled "
        "and had every group at the end of what it reads, and per job what each group read of "
        "each topic and what was written to each topic.",
        "broker_requests_per_job (with BENCH_BROKER_REQUESTS=1 only): the requests the brokers' "
        "request log (kafka.request.logger at DEBUG for the run) shows for the run's clients, "
        "all of them, the benchmark's own included, over the same window and jobs as "
        "records_per_job; broker_requests_per_job.<process kind>.<client id> per client. The "
        "logging costs the brokers CPU: compare cpu_ms_per_job.kafka only between runs without.",
    ]
    document = build_document(
        config={
            **config.as_dict(),
            "run_id": run_id,
            "logs": str(run_dir),
            "tracing": tracing_setting(),
        },
        machine=machine,
        ours=ours,
        peer=peer,
        notes=notes,
    )
    if config.profile:
        document["profiles"] = profiler.summary()
    document["elapsed_s"] = round(time.monotonic() - began, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(render_table(document))
    print(f"\nwritten to {out} in {document['elapsed_s']:.0f}s")
    return 0
