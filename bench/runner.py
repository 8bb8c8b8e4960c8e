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
    run_overhead,
    run_pipeline,
    run_priority,
    run_submit,
)

__all__ = ["run_benchmark"]

_log = logging.getLogger("bench")
ALL = ("submit", "dispatch", "sse", "pipeline", "overhead", "priority", "replay")
_SERVICES = {"submit", "dispatch", "pipeline", "overhead", "priority"}
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
    ]
    document = build_document(
        config={**config.as_dict(), "run_id": run_id, "logs": str(run_dir)},
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
