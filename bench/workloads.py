"""The workloads, written once against ``System`` and run on genstream and on the peer.

Each returns its section of the result document: headline figures (medians over the
repeated runs) as plain numbers, their spread under ``spread``, and the details per run.
"""

from __future__ import annotations

import http.client
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from bench import cpu, speed
from bench.config import BenchConfig
from bench.load import LoadRun, run_open_loop
from bench.meter import KafkaMeter, Mark
from bench.schedule import open_loop_schedule
from bench.stats import latency_summary, percentile, spread
from bench.system import Endpoint, JobSpec, System

__all__ = [
    "combine",
    "run_dispatch",
    "run_overhead",
    "run_pipeline",
    "run_priority",
    "run_submit",
]

_log = logging.getLogger("bench")

_PILOT_JOBS = 200
"""The pipeline's pilot burst, which sizes the measured ones."""

Run = dict[str, float]
Hook = Callable[[str, float], None]
"""Called at the start of a measured run with its label and length (profiling)."""


def _no_hook(label: str, seconds: float) -> None:
    del label, seconds


def combine(runs: Sequence[Run], keys: Sequence[str]) -> dict[str, Any]:
    """Medians of ``keys`` over ``runs`` as plain numbers, their spread, and the runs."""
    section: dict[str, Any] = {}
    bands: dict[str, Any] = {}
    for key in keys:
        band = spread([run.get(key, math.nan) for run in runs])
        section[key] = round(band.median, 3) if not math.isnan(band.median) else None
        bands[key] = band.as_dict()
    section["spread"] = bands
    section["runs"] = list(runs)
    return section


def _job_id(kind: str) -> str:
    return f"job_{kind}{uuid.uuid4().hex}"


# -- submit ----------------------------------------------------------------------------------------
def _submit_run(run: LoadRun) -> Run:
    summary = latency_summary(run.ok_latencies)
    total = len(run.status) or 1
    return {
        "achieved_per_s": run.achieved_per_s(),
        "generator_send_per_s": run.generator_send_per_s(),
        "send_lag_p99_ms": run.send_lag_p99_ms(),
        "generator_lag_p99_ms": run.generator_lag_p99_ms(),
        "p50_ms": float(summary["p50_ms"]),
        "p99_ms": float(summary["p99_ms"]),
        "error_rate": run.errors / total,
    }


def run_submit(system: System, config: BenchConfig, hook: Hook = _no_hook) -> dict[str, Any]:
    """``POST /v1/jobs`` at rising fixed rates until the endpoint no longer keeps up."""
    endpoint = system.start_api(purpose="submit")
    rates: list[dict[str, Any]] = []
    try:
        # Warm-up: connections, pools and caches of every server process.
        run_open_loop(endpoint, rate_per_s=200, duration_s=2, connections=config.load_connections)
        saturated = False
        for rate in config.submit_rates:
            if saturated and rate not in config.submit_required_rates:
                continue
            runs = []
            for repetition in range(config.repetitions):
                if repetition == 0 and rate in config.submit_required_rates:
                    hook(f"submit-{rate}", config.submit_duration_s)
                load = run_open_loop(
                    endpoint,
                    rate_per_s=rate,
                    duration_s=config.submit_duration_s,
                    connections=config.load_connections,
                )
                runs.append(_submit_run(load))
                _log.info("%s submit %d/s: %s", system.name, rate, _brief(runs[-1]))
                # Past saturation the server still works off what the generator gave up on.
                settle(endpoint)
            keys = ("achieved_per_s", "p50_ms", "p99_ms", "error_rate", "generator_send_per_s")
            lags = ("send_lag_p99_ms", "generator_lag_p99_ms")
            entry = {"offered_per_s": rate, **combine(runs, (*keys, *lags))}
            rates.append(entry)
            saturated = saturated or _saturated(entry)
    finally:
        system.stop_api()
    return _submit_section(rates, endpoint.workers)


def settle(endpoint: Endpoint, *, timeout_s: float = 60.0) -> None:
    """Waits until a single submission is answered promptly again (the backlog is gone)."""
    deadline = time.monotonic() + timeout_s
    body, token = endpoint.body.encode(), endpoint.tokens[0]
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout_s)
        began = time.monotonic()
        try:
            connection.request(
                "POST",
                endpoint.path,
                body=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            connection.getresponse().read()
        except OSError:
            continue
        finally:
            connection.close()
        if time.monotonic() - began < 0.2:
            return


def _saturated(entry: dict[str, Any]) -> bool:
    achieved, p99, errors = entry["achieved_per_s"], entry["p99_ms"], entry["error_rate"]
    return bool(
        achieved is None
        or achieved < 0.9 * entry["offered_per_s"]
        or p99 is None
        or p99 > 1000
        or (errors or 0) > 0.05
    )


def _holds(entry: dict[str, Any], p99_limit_ms: float) -> bool:
    p99, achieved = entry["p99_ms"], entry["achieved_per_s"]
    return (
        p99 is not None
        and p99 < p99_limit_ms
        and achieved is not None
        and achieved >= 0.95 * entry["offered_per_s"]
        and (entry["error_rate"] or 0) < 0.01
    )


def _submit_section(rates: list[dict[str, Any]], workers: int) -> dict[str, Any]:
    held = [entry["offered_per_s"] for entry in rates if _holds(entry, 50)]
    at_1000 = next((entry for entry in rates if entry["offered_per_s"] == 1000), None)
    section: dict[str, Any] = {
        "max_rate_p99_50ms": max(held) if held else 0,
        "p99_ms_at_1000": at_1000["p99_ms"] if at_1000 else None,
        "p50_ms_at_1000": at_1000["p50_ms"] if at_1000 else None,
        "server_processes": workers,
        "spread": {},
        "rates": rates,
    }
    if at_1000:
        section["spread"] = {
            "p99_ms_at_1000": at_1000["spread"]["p99_ms"],
            "p50_ms_at_1000": at_1000["spread"]["p50_ms"],
        }
    return section


# -- dispatch --------------------------------------------------------------------------------------
def run_dispatch(system: System, config: BenchConfig, hook: Hook = _no_hook) -> dict[str, Any]:
    """Submit over HTTP at a fixed rate; time from the scheduled send to ``started``."""
    endpoint = system.start_api(purpose="dispatch")
    runs = []
    dispatched: list[str] = []
    marked = _mark(system)
    try:
        warm = run_open_loop(
            endpoint,
            rate_per_s=config.dispatch_rate / 2,
            duration_s=2,
            connections=64,
            keep_ids=True,
        )
        dispatched.extend(i for i in warm.ids if i)
        system.clock.wait_for("started", dispatched, timeout_s=60)
        for repetition in range(config.repetitions):
            if repetition == 0:
                hook("dispatch", config.dispatch_duration_s)
            cpu_before = cpu.sample(_named_pids(system))
            load_began = time.time()
            load = run_open_loop(
                endpoint,
                rate_per_s=config.dispatch_rate,
                duration_s=config.dispatch_duration_s,
                connections=64,
                keep_ids=True,
            )
            sent = {
                job_id: at for job_id, at in zip(load.ids, load.scheduled, strict=True) if job_id
            }
            started = system.clock.wait_for("started", list(sent), timeout_s=120)
            # Up to the last start: the submissions, their admission and their dispatch.
            used = cpu.cpu_ms_per_job(cpu_before, cpu.sample(_named_pids(system)), len(started))
            probe = speed.reading(load_began, time.time())
            dispatched.extend(sent)
            latencies = [(started[j] - at) * 1000 for j, at in sent.items() if j in started]
            summary = latency_summary(latencies)
            runs.append(
                {
                    "p50_ms": float(summary["p50_ms"]),
                    "p90_ms": float(summary["p90_ms"]),
                    "p99_ms": float(summary["p99_ms"]),
                    **_admission(system, sent),
                    "submit_p99_ms": percentile(load.ok_latencies, 99),
                    "not_started": float(len(sent) - len(started)),
                    "submit_errors": float(load.errors),
                    **_cpu_figures(used),
                    **probe,
                }
            )
            _log.info("%s dispatch: %s", system.name, _brief(runs[-1]))
    finally:
        system.stop_api()
        # What a slow system still owes would otherwise run during the next workload.
        system.clock.wait_for("completed", dispatched, timeout_s=300)
    keys = (
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "submit_p99_ms",
        "admit_p50_ms",
        "admit_p99_ms",
        "not_started",
        "submit_errors",
    )
    cpu_keys = _cpu_keys(runs)
    return {
        "rate_per_s": config.dispatch_rate,
        "workers": config.workers,
        **combine(runs, (*keys, *cpu_keys)),
        **_window_figures(marked, len(dispatched)),
    }


def _admission(system: System, sent: dict[str, float]) -> dict[str, float]:
    """Scheduled send to ``queued`` (admitted onto a tier topic), where the system says so:
    splits a dispatch latency into admission and the wait for a worker."""
    queued = system.clock.times("queued", list(sent))
    waits = [(queued[j] - at) * 1000 for j, at in sent.items() if j in queued]
    return {"admit_p50_ms": percentile(waits, 50), "admit_p99_ms": percentile(waits, 99)}


# -- pipeline --------------------------------------------------------------------------------------
def run_pipeline(system: System, config: BenchConfig, hook: Hook = _no_hook) -> dict[str, Any]:
    """A burst of 0-ms jobs handed to the system at once; completions per second.

    A pilot burst sizes the measured ones so that each lasts about ``pipeline_seconds``:
    long enough for a steady rate, short enough for a slow system to finish in time.
    """
    marked = _mark(system)
    pilot = _pipeline_burst(system, _PILOT_JOBS, config.pipeline_timeout_s)
    rate = pilot["end_to_end_jobs_per_s"]
    jobs = 200 if math.isnan(rate) else round(rate * config.pipeline_seconds)
    jobs = min(max(jobs, 200), config.pipeline_max_jobs)
    _log.info("%s pipeline pilot: %s; runs of %d jobs", system.name, _brief(pilot), jobs)
    runs = []
    for repetition in range(config.repetitions):
        if repetition == 0:
            hook("pipeline", min(config.pipeline_seconds, 15.0))
        runs.append(_pipeline_burst(system, jobs, config.pipeline_timeout_s))
        _log.info("%s pipeline: %s", system.name, _brief(runs[-1]))
    keys = ("jobs_per_s", "end_to_end_jobs_per_s", "completed", "handover_s")
    cpu_keys = _cpu_keys(runs)
    return {
        "jobs": jobs,
        "workers": config.workers,
        **combine(runs, (*keys, *cpu_keys)),
        # The pilot's jobs too: the figures cover the whole workload.
        **_window_figures(marked, _PILOT_JOBS + jobs * config.repetitions),
    }


def _pipeline_burst(system: System, count: int, timeout_s: float) -> dict[str, float]:
    jobs = [JobSpec(_job_id("pipe"), i, "pro", 0, 0) for i in range(count)]
    ids = [job.job_id for job in jobs]
    named = _named_pids(system)
    cpu_before = cpu.sample(named)
    began = time.time()
    system.enqueue(jobs)
    handed_over = time.time() - began
    done = system.clock.wait_for("completed", ids, timeout_s=timeout_s)
    used = cpu.cpu_ms_per_job(cpu_before, cpu.sample(named), len(done))
    return {
        **_throughput(sorted(done.values()), began),
        "handover_s": handed_over,
        "completed": float(len(done)),
        **_cpu_figures(used),
        **speed.reading(began, time.time()),
    }


def _cpu_figures(used: dict[str, float]) -> dict[str, float]:
    """``cpu_ms_per_job.<component>`` and ``cpu_ms_per_job.total``."""
    return {f"cpu_ms_per_job.{name}": ms for name, ms in cpu.with_total(used).items()}


def _mark(system: System) -> tuple[KafkaMeter, Mark] | None:
    """The start of a window over which the system's Kafka clients are measured; None
    where the system has none or the mark failed (the workload goes on without)."""
    meter = system.kafka_meter()
    if meter is None:
        return None
    try:
        return meter, meter.mark()
    except Exception:
        _log.exception("%s: consumer positions not read; no records_per_job", system.name)
        return None


def _window_figures(marked: tuple[KafkaMeter, Mark] | None, jobs: int) -> dict[str, Any]:
    """``records_per_job.*`` (and ``broker_requests_per_job*`` where counted) since the mark,
    over ``jobs`` jobs, once the system has settled."""
    if marked is None:
        return {}
    meter, since = marked
    try:
        return meter.figures(since, jobs)
    except Exception:
        _log.exception("consumer positions not read; no records_per_job")
        return {}


def _cpu_keys(runs: list[dict[str, float]]) -> list[str]:
    """Where the CPU went, by component, and how fast the machine was meanwhile, so that a
    rate can be read against its cost."""
    return sorted(
        {
            key
            for run in runs
            for key in run
            if key.startswith("cpu_ms_per_job.") or key == "probe_ms"
        }
    )


def _named_pids(system: System) -> dict[int, str]:
    """The system's service processes, and this one as ``bench``, for CPU accounting."""
    # Workers "worker-0", "worker-1", ... are summed as one component.
    named = {pid: name.split("-")[0] for name, pid in system.pids().items()}
    named[os.getpid()] = cpu.OWN
    return named


def _throughput(times: list[float], began: float) -> dict[str, float]:
    """Steady rate between the 10th and 90th percentile completions, and the overall rate."""
    n = len(times)
    if n < 10:
        return {"jobs_per_s": math.nan, "end_to_end_jobs_per_s": math.nan}
    low, high = n // 10, n - n // 10 - 1
    steady = (high - low) / (times[high] - times[low]) if times[high] > times[low] else math.nan
    return {"jobs_per_s": steady, "end_to_end_jobs_per_s": n / (times[-1] - began)}


# -- priority --------------------------------------------------------------------------------------
def run_priority(system: System, config: BenchConfig) -> dict[str, Any]:
    """A deep free backlog on one worker, then pro jobs at a steady rate."""
    system.start_workers(1)
    step_ms = config.priority_step_ms
    backlog = [
        JobSpec(_job_id("free"), i, "free", 1, step_ms) for i in range(config.priority_backlog)
    ]
    free_ids = [job.job_id for job in backlog]
    system.enqueue(backlog)
    admitted = system.admitted(free_ids, timeout_s=300)
    system.clock.wait_for("started", free_ids[:1], timeout_s=60)
    pro_rate = config.priority_pro_load * 1000 / step_ms
    runs = []
    try:
        for _ in range(config.repetitions):
            runs.append(_pro_phase(system, config, pro_rate, free_ids))
            _log.info("%s priority: %s", system.name, _brief(runs[-1]))
    finally:
        system.stop_workers()
    keys = (
        "pro_wait_p50_ms",
        "pro_wait_p99_ms",
        "pro_admit_p50_ms",
        "pro_admit_p99_ms",
        "free_share",
        "pro_not_started",
        "eta_abs_error_p50_ms",
        "eta_abs_error_p90_ms",
    )
    return {
        "service_ms": step_ms,
        "pro_wait_limit_ms": step_ms + 100,
        "pro_rate_per_s": pro_rate,
        "backlog": config.priority_backlog,
        "backlog_admitted": admitted,
        "backlog_left": config.priority_backlog - system.clock.count("started", free_ids),
        **combine(runs, keys),
    }


def _pro_phase(
    system: System, config: BenchConfig, rate: float, free_ids: list[str]
) -> dict[str, float]:
    times = open_loop_schedule(rate, config.priority_phase_s, start=time.time() + 0.5)
    sent: dict[str, float] = {}
    for index, at in enumerate(times):
        time.sleep(max(0.0, at - time.time()))
        job = JobSpec(_job_id("pro"), index, "pro", 1, config.priority_step_ms)
        system.enqueue([job])
        sent[job.job_id] = at
    started = system.clock.wait_for("started", list(sent), timeout_s=config.priority_phase_s + 60)
    waits = [(started[j] - at) * 1000 for j, at in sent.items() if j in started]
    window_end = max(started.values()) if started else times[-1]
    free_in_window = sum(
        1 for at in system.clock.times("started", free_ids).values() if times[0] <= at <= window_end
    )
    total = free_in_window + len(started)
    return {
        "pro_wait_p50_ms": percentile(waits, 50),
        "pro_wait_p99_ms": percentile(waits, 99),
        **{f"pro_{key}": value for key, value in _admission(system, sent).items()},
        "free_share": free_in_window / total if total else math.nan,
        "pro_not_started": float(len(sent) - len(started)),
        **_eta_errors(system, sent, free_ids, config.priority_step_ms / 1000),
    }


def _eta_errors(
    system: System, sent: dict[str, float], free_ids: list[str], service_s: float
) -> dict[str, float]:
    """How far the API's start estimate (``api.jobs.eta`` over the queue as it stood when
    each pro job was queued, one worker) is from the start each got: ``eta_abs_error`` p50
    and p90. Only for a system whose clock sees queueing (the peer's does not)."""
    from api.jobs.eta import starts_ahead

    clock = system.clock
    queued = clock.times("queued", [*sent, *free_ids])
    if not queued:
        return {}
    started = clock.times("started", [*sent, *free_ids])
    completed = clock.times("completed", [*sent, *free_ids])
    errors = []
    for job_id in sent:
        at, began = queued.get(job_id), started.get(job_id)
        if at is None or began is None:
            continue
        waiting = {
            tier: sum(
                1
                for other in ids
                if other != job_id
                and queued.get(other, math.inf) <= at < started.get(other, math.inf)
            )
            for tier, ids in (("pro", sent), ("free", free_ids))
        }
        running_left = sum(
            max(0.0, service_s - (at - started[other]))
            for other in started
            if started[other] <= at < completed.get(other, math.inf)
        )
        ahead = starts_ahead("pro", waiting["pro"], {"free": waiting["free"]})
        predicted = at + running_left + ahead * service_s
        errors.append(abs(began - predicted) * 1000)
    return {
        "eta_abs_error_p50_ms": percentile(errors, 50),
        "eta_abs_error_p90_ms": percentile(errors, 90),
        "eta_estimates": float(len(errors)),
    }


# -- fairness --------------------------------------------------------------------------------------
def run_fairness(system: System, config: BenchConfig) -> dict[str, Any]:
    """One pro user queues a backlog on one worker; once it is all admitted, another pro user
    submits one job: how long it waits, in service times."""
    system.start_workers(1)
    step_ms = config.fairness_step_ms
    runs = []
    try:
        for _ in range(config.repetitions):
            runs.append(_fairness_run(system, config.fairness_backlog, step_ms))
            _log.info("%s fairness: %s", system.name, _brief(runs[-1]))
    finally:
        system.stop_workers()
    keys = ("late_wait_ms", "late_wait_service_times", "backlog_started_first", "late_not_started")
    return {"service_ms": step_ms, "backlog": config.fairness_backlog, **combine(runs, keys)}


def _fairness_run(system: System, backlog: int, step_ms: int) -> dict[str, float]:
    hog = [JobSpec(_job_id("hog"), 0, "pro", 1, step_ms) for _ in range(backlog)]
    hog_ids = [job.job_id for job in hog]
    system.enqueue(hog)
    system.admitted(hog_ids, timeout_s=120)
    system.clock.wait_for("started", hog_ids[:1], timeout_s=60)
    late = JobSpec(_job_id("late"), 1, "pro", 1, step_ms)
    sent = time.time()
    system.enqueue([late])
    drain_s = backlog * step_ms / 1000 * 3 + 60
    started = system.clock.wait_for("started", [late.job_id], timeout_s=drain_s)
    at = started.get(late.job_id)
    before = sum(1 for t in system.clock.times("started", hog_ids).values() if at and t < at)
    # The backlog drains before the next run, so that each run starts from an idle worker.
    system.clock.wait_for("completed", hog_ids, timeout_s=drain_s)
    wait_ms = (at - sent) * 1000 if at else math.nan
    return {
        "late_wait_ms": wait_ms,
        "late_wait_service_times": wait_ms / step_ms,
        "backlog_started_first": float(before),
        "late_not_started": float(at is None),
    }


# -- overhead --------------------------------------------------------------------------------------
def plain_loop_s(jobs: int, steps: int, step_ms: int) -> float:
    """The synthetic pipeline run ``jobs`` times in a loop: the time the work itself takes."""
    from contracts.inputs import SyntheticInput
    from gpu_consumers.pipelines.base import RunContext
    from gpu_consumers.pipelines.synthetic import SyntheticPipeline

    pipeline = SyntheticPipeline()
    job_input = SyntheticInput(steps=steps, step_ms=step_ms, output_bytes=0)
    began = time.monotonic()
    for index in range(jobs):
        pipeline.run(RunContext(job_id=f"plain-{index}", input=job_input))
    return time.monotonic() - began


def run_overhead(system: System, config: BenchConfig) -> dict[str, Any]:
    """The same jobs through the system (one worker) and in a plain loop."""
    system.start_workers(1)
    steps, step_ms, count = config.overhead_steps, config.overhead_step_ms, config.overhead_jobs
    runs = []
    for _ in range(config.repetitions):
        plain = plain_loop_s(count, steps, step_ms)
        jobs = [JobSpec(_job_id("over"), i, "pro", steps, step_ms) for i in range(count)]
        ids = [job.job_id for job in jobs]
        began = time.time()
        system.enqueue(jobs)
        done = system.clock.wait_for(
            "completed", ids, timeout_s=count * steps * step_ms / 1000 * 3 + 60
        )
        started = system.clock.times("started", ids)
        through = max(done.values()) - began if done else math.nan
        running = max(done.values()) - min(started.values()) if done and started else math.nan
        runs.append(
            {
                "ratio": plain / through,
                "worker_ratio": plain / running,
                "plain_s": plain,
                "system_s": through,
                "overhead_ms_per_job": (through - plain) / count * 1000,
                # The one-off part: submission to the first job's start, through the processors.
                "first_start_ms": (min(started.values()) - began) * 1000 if started else math.nan,
                "completed": float(len(done)),
            }
        )
        _log.info("%s overhead: %s", system.name, _brief(runs[-1]))
    keys = (
        "ratio",
        "worker_ratio",
        "overhead_ms_per_job",
        "first_start_ms",
        "plain_s",
        "system_s",
        "completed",
    )
    return {"job_ms": steps * step_ms, "jobs": count, **combine(runs, keys)}


def _brief(run: Run) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in run.items())
