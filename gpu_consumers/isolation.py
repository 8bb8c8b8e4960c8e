"""Pipelines run in a long-lived child process that the worker watches and can stop.

The child loads models once and keeps them (its own ``ModelCache``), so a job costs one
request and its progress messages over a pipe. The worker meanwhile watches the child: its
resident memory against the per-job ceiling, the job's ``check`` (cancellation, wall-clock
limit). A job that must stop is asked to at its next step; one that does not get there
within ``stop_grace_s`` (a long single forward pass) is killed with its child, and so is a
job past the memory ceiling, at once. A killed child is started again for the next job,
which then loads its model anew: only a job that had to be killed costs a reload.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from contracts import JobType
from contracts.errors import JobErrorCode
from gpu_consumers import metrics
from gpu_consumers.pipelines.base import (
    JobStopped,
    LimitExceededError,
    PermanentError,
    Pipeline,
    PipelineResult,
    Preview,
    RunContext,
    TransientError,
)

__all__ = ["ChildSpec", "HostedPipeline", "JobLimits", "PipelineError", "PipelineHost"]

_log = logging.getLogger(__name__)

_PAGE: Final = os.sysconf("SC_PAGE_SIZE")
_PR_SET_PDEATHSIG: Final = 1
_MB: Final = 1024 * 1024
_MESSAGES_PER_LOOK: Final = 64

PipelineFactory = Callable[[JobType, str | None], Pipeline]
"""Builds an unloaded pipeline in the child; a module-level function, so it can be sent."""


class PipelineError(RuntimeError):
    """An error raised in the child that no pipeline classified, named as it was raised."""


@dataclass(frozen=True, slots=True)
class JobLimits:
    memory_bytes: int | None
    """Resident memory the child may reach (its loaded models included); None: no ceiling."""
    address_space_bytes: int | None = None
    """``RLIMIT_AS`` of the child, a hard stop no allocation passes; None: unlimited (CUDA
    maps far more address space than it uses, so leave it unset on GPUs)."""
    stop_grace_s: float = 5.0
    """How long a job asked to stop may take to reach its next step before it is killed."""
    poll_s: float = 0.01
    """How often the child's memory and the job's check are looked at."""


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """What the child needs to build pipelines: sent once, when it starts."""

    device: str
    budget_bytes: int
    models: dict[JobType, str | None]
    factory: PipelineFactory
    address_space_bytes: int | None = None
    preload: tuple[JobType, ...] = ()
    """Job types whose models are loaded before the child reports ready, so that the first
    job of each does not spend its time limit loading."""


@dataclass(frozen=True, slots=True)
class _Job:
    job_id: str
    input: BaseModel
    attempt: int
    input_files: dict[str, Path]
    work_dir: Path | None


@dataclass(slots=True)
class _Child:
    process: SpawnProcess
    conn: Connection


@dataclass(slots=True)
class _Watch:
    """One run's state as the worker sees it."""

    stopped: JobStopped | None = None
    stop_by: float = 0.0
    peak_bytes: int = 0
    results: list[PipelineResult] = field(default_factory=list)


class PipelineHost:
    """Runs jobs of any job type in one child process, one run at a time."""

    def __init__(self, spec: ChildSpec, limits: JobLimits) -> None:
        self._spec = spec
        self._limits = limits
        self._context = multiprocessing.get_context("spawn")
        self._stop_flag: Synchronized[int] = self._context.Value("i", 0)
        self._child: _Child | None = None
        self._device: str | None = None
        self._lock = threading.Lock()

    @property
    def device(self) -> str:
        """The device the child chose (``ChildSpec.device`` may be ``auto``)."""
        return self._device or self._spec.device

    def start(self, timeout_s: float = 300.0) -> str:
        """Starts the child now (it imports the model libraries, picks the device and loads
        ``ChildSpec.preload``) and returns the device; raises ``RuntimeError`` with the
        child's reason where it cannot run, ``TransientError`` where it did not start."""
        with self._lock:
            self._started(timeout_s)
        return self.device

    def pipeline(self, job_type: JobType) -> HostedPipeline:
        """The pipeline ``JobRunner`` calls for ``job_type``; it runs in the child."""
        return HostedPipeline(self, job_type)

    def child_pid(self) -> int | None:
        child = self._child
        return None if child is None else child.process.pid

    def close(self) -> None:
        with self._lock:
            child, self._child = self._child, None
            if child is not None:
                with contextlib.suppress(OSError):
                    child.conn.send(("exit",))
                child.process.join(10)
                if child.process.is_alive():
                    child.process.kill()
                    child.process.join(10)
                child.conn.close()

    def run(self, job_type: JobType, contexts: list[RunContext], *, batch: bool) -> Any:
        with self._lock:
            child = self._started()
            self._stop_flag.value = 0
            jobs = [
                _Job(ctx.job_id, ctx.input, ctx.attempt, dict(ctx.input_files), ctx.work_dir)
                for ctx in contexts
            ]
            try:
                child.conn.send(("run", job_type, batch, jobs))
            except OSError as error:
                self._discard(child)
                raise TransientError(f"the pipeline process is gone: {error}") from error
            watch = _Watch()
            try:
                return self._follow(child, contexts, watch)
            except PermanentError as error:
                if error.code == JobErrorCode.MEMORY_LIMIT.value and self._child is child:
                    # A child whose allocation failed leaves; the next job gets a fresh one.
                    self._discard(child)
                raise
            finally:
                _log.info(
                    "pipeline process peak memory %.0f MiB",
                    watch.peak_bytes / _MB,
                    extra={"peak_rss_mb": round(watch.peak_bytes / _MB, 1)},
                )

    # -- the child's life ----------------------------------------------------------------------
    def _started(self, timeout_s: float = 300.0) -> _Child:
        if self._child is not None and self._child.process.is_alive():
            return self._child
        if self._child is not None:
            self._discard(self._child)
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_child_main,
            args=(theirs, self._stop_flag, self._spec),
            name="pipeline",
            daemon=True,
        )
        process.start()
        theirs.close()
        child = _Child(process, ours)
        try:
            if not ours.poll(timeout_s):
                raise RuntimeError(f"the pipeline process did not start within {timeout_s} s")
            message = ours.recv()
        except (EOFError, OSError, RuntimeError) as error:
            self._discard(child)
            raise TransientError(f"the pipeline process did not start: {error}") from error
        if message[0] != "ready":
            self._discard(child)
            raise RuntimeError(f"the pipeline process cannot run: {message[1]}")
        self._device = message[1]
        self._child = child
        _log.info("pipeline process %s started on %s", process.pid, self._device)
        return child

    def _kill(self, child: _Child, why: str) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.process.kill()
        child.process.join(10)
        _log.warning("pipeline process %s killed: %s", child.process.pid, why)
        self._discard(child)

    def _discard(self, child: _Child) -> None:
        with contextlib.suppress(OSError):
            child.conn.close()
        if child.process.is_alive():
            child.process.kill()
        child.process.join(10)
        if self._child is child:
            self._child = None

    # -- one run -------------------------------------------------------------------------------
    def _follow(self, child: _Child, contexts: list[RunContext], watch: _Watch) -> Any:
        limit = self._limits.memory_bytes
        while True:
            if self._receive(child, contexts, watch):
                return watch.results
            resident = _resident_bytes(child.process.pid or 0)
            watch.peak_bytes = max(watch.peak_bytes, resident)
            if limit is not None and resident > limit:
                self._kill(child, "memory ceiling")
                raise LimitExceededError(
                    JobErrorCode.MEMORY_LIMIT,
                    f"the job went past the worker's memory ceiling of {limit // _MB} MiB "
                    f"({resident // _MB} MiB resident) and was stopped",
                )
            if watch.stopped is None:
                try:
                    for ctx in contexts:
                        ctx.check()
                except JobStopped as stopped:
                    watch.stopped = stopped
                    watch.stop_by = time.monotonic() + self._limits.stop_grace_s
                    self._stop_flag.value = 1
            elif time.monotonic() > watch.stop_by:
                self._kill(child, f"did not stop within {self._limits.stop_grace_s} s")
                raise watch.stopped

    def _receive(self, child: _Child, contexts: list[RunContext], watch: _Watch) -> bool:
        """Handles what the child sent within one poll interval; whether the run ended."""
        try:
            if not child.conn.poll(self._limits.poll_s):
                return False
            # A bounded number per look, so a flood of progress never starves the watch.
            for _ in range(_MESSAGES_PER_LOOK):
                message = child.conn.recv()
                if self._handle(message, contexts, watch):
                    return True
                if not child.conn.poll():
                    break
            return False
        except (EOFError, OSError):
            child.process.join(10)
            code = child.process.exitcode
            self._discard(child)
            if watch.stopped is not None:
                raise watch.stopped from None
            if code is not None and code == -signal.SIGKILL:
                # Killed from outside, the kernel's out-of-memory killer most likely.
                raise LimitExceededError(
                    JobErrorCode.MEMORY_LIMIT, "the pipeline process was killed (out of memory)"
                ) from None
            raise TransientError(f"the pipeline process died (exit code {code})") from None

    def _handle(self, message: tuple[Any, ...], contexts: list[RunContext], watch: _Watch) -> bool:
        kind = message[0]
        if kind == "progress":
            _, index, step, total, text = message
            contexts[index].progress(step, total, text)
            return False
        if kind == "preview":
            _, index, shot = message
            contexts[index].preview(shot)
            return False
        if kind == "device_memory":
            # The worker's own gauge: the child holds the device, the worker the metrics.
            metrics.GPU_MEMORY.set(message[1])
            return False
        if kind == "done":
            watch.results = message[1]
            return True
        _, name, text, code = message
        if watch.stopped is not None:
            raise watch.stopped
        raise _rebuilt(name, text, code)


class HostedPipeline:
    """A ``Pipeline`` whose ``run`` happens in the host's child; loading is the child's."""

    def __init__(self, host: PipelineHost, job_type: JobType) -> None:
        self._host = host
        self.job_type = job_type
        if job_type is JobType.IMAGE_GENERATE:
            # Only image generation batches; the runner looks for run_batch to know.
            self.run_batch = self._run_batch

    @property
    def memory_bytes(self) -> int:
        return 0

    def load(self, device: str) -> None:
        del device

    def unload(self) -> None:
        return None

    def run(self, ctx: RunContext) -> PipelineResult:
        results: list[PipelineResult] = self._host.run(self.job_type, [ctx], batch=False)
        return results[0]

    def _run_batch(self, contexts: list[RunContext]) -> list[PipelineResult]:
        results: list[PipelineResult] = self._host.run(self.job_type, contexts, batch=True)
        return results


def _rebuilt(name: str, text: str, code: str) -> Exception:
    if name == "JobStopped":
        return JobStopped(text)
    if name == "TransientError":
        return TransientError(text)
    if name == "PermanentError":
        error = PermanentError(text)
        error.code = code
        return error
    return PipelineError(f"{name}: {text}")


def _resident_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


# -- the child -------------------------------------------------------------------------------
def _child_main(conn: Connection, stop_flag: Synchronized[int], spec: ChildSpec) -> None:
    _die_with_parent()
    # The worker handles signals; a terminal's Ctrl-C must not kill the job under it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if spec.address_space_bytes is not None:
        resource.setrlimit(resource.RLIMIT_AS, (spec.address_space_bytes,) * 2)
    from gpu_consumers.model_cache import ModelCache

    try:
        device = _device(spec)
    except Exception as error:  # the worker refuses to start, with this reason
        conn.send(("failed", f"{type(error).__name__}: {error}"))
        return
    cache = ModelCache(spec.budget_bytes, device, lambda key: spec.factory(key[0], key[1]))
    for job_type in spec.preload:
        try:
            cache.get((job_type, spec.models.get(job_type)))
        except Exception:
            # Its jobs will meet the same error, and fail with it; the others can run.
            _log.exception("the model for %s did not load", job_type.value)
    conn.send(("ready", device))

    def check() -> None:
        if stop_flag.value:
            raise JobStopped("stopped by the worker")

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] != "run":
            return
        _, job_type, batch, jobs = message
        try:
            pipeline = cache.get((job_type, spec.models.get(job_type)))
            contexts = [_child_context(conn, index, job, check) for index, job in enumerate(jobs)]
            run_batch = getattr(pipeline, "run_batch", None)
            if batch and run_batch is not None:
                results = run_batch(contexts)
            else:
                results = [pipeline.run(contexts[0])]
            conn.send(("device_memory", _device_memory(device)))
            conn.send(("done", results))
        except BaseException as error:  # every failure goes back to the worker
            conn.send(("error", *_described(error, memory_capped=spec.address_space_bytes)))
            if isinstance(error, MemoryError | KeyboardInterrupt | SystemExit):
                # Whatever was half allocated stays fragmented; a fresh child is cheaper.
                return


def _device(spec: ChildSpec) -> str:
    if spec.device in ("auto", "cpu") and not any(spec.models.values()):
        # No model to put on a device: torch need not even be imported.
        return "cpu"
    from gpu_consumers.device import choose_device

    return choose_device(spec.device)


def _device_memory(device: str) -> int:
    if not device.startswith("cuda"):
        return 0
    import torch

    return int(torch.cuda.memory_allocated())


def _child_context(
    conn: Connection, index: int, job: _Job, check: Callable[[], None]
) -> RunContext:
    def progress(step: int, total: int, message: str | None) -> None:
        conn.send(("progress", index, step, total, message))

    def preview(shot: Preview) -> None:
        conn.send(("preview", index, shot))

    return RunContext(
        job_id=job.job_id,
        input=job.input,
        attempt=job.attempt,
        input_files=job.input_files,
        work_dir=job.work_dir,
        progress=progress,
        preview=preview,
        check=check,
    )


def _described(error: BaseException, *, memory_capped: int | None) -> tuple[str, str, str]:
    if isinstance(error, MemoryError) or (
        memory_capped is not None and "allocate" in str(error).lower()
    ):
        return "PermanentError", "the job ran out of the memory it may use", "memory_limit"
    for kind in (JobStopped, TransientError, PermanentError):
        if isinstance(error, kind):
            return kind.__name__, str(error), getattr(error, "code", "")
    return type(error).__name__, str(error), ""


def _die_with_parent() -> None:
    # A worker killed outright (SIGKILL) takes its pipeline process with it. The signal
    # comes when the thread that started the child ends: the main thread or the worker's
    # job thread, both of which live as long as the worker.
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
