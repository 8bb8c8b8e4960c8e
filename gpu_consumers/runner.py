"""Runs one dispatched job to its end and writes what happened.

The end of a job is exactly one of: completed, failed (to the dead-letter topic), retried
later (through the retry topic), cancelled or expired; each is written and acknowledged by
the brokers before the runner's finish returns, so the caller may then commit the dispatch.
A batch is run in two parts: ``start_batch`` runs the pipelines (the device's part) and
hands back the finish, which uploads the outputs and writes the ends, so that a worker can
finish one batch while the next runs. Events a job has once per attempt carry ids derived
from the job and attempt: a job run again after a worker died writes the same ids, and
every reader keeps one copy.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry.trace import get_current_span as current_span
from opentelemetry.trace import use_span

from contracts import (
    EXPIRED_REASON,
    Envelope,
    Event,
    ImageEditInput,
    JobCancelled,
    JobCompleted,
    JobExpired,
    JobFailed,
    JobPreview,
    JobProgress,
    JobQueued,
    JobRetried,
    JobStarted,
    JobType,
    OutputFile,
    Tier,
    TopicSpec,
    VideoEnhanceInput,
    derived_event_id,
    encode,
    kafka_headers,
    partition_key,
)
from contracts.traceparent import TraceParent
from genstream.kafka.deadletter import parked_headers
from genstream.logs import log_context
from genstream.tracing import event_trace, span_from, tracer
from gpu_consumers import metrics
from gpu_consumers.backoff import retry_delay_ms
from gpu_consumers.control import JobControl
from gpu_consumers.input_bounds import InputBounds, check_input
from gpu_consumers.pipelines.base import (
    JobStopped,
    PermanentError,
    Pipeline,
    PipelineResult,
    Preview,
    RunContext,
    TransientError,
)
from gpu_consumers.progress import ProgressThrottle
from gpu_consumers.settings import WorkerSettings
from gpu_consumers.storage import ObjectStore, output_key
from gpu_consumers.topology import WorkerTopology
from producers import EventProducer

__all__ = ["DUE_HEADER", "Finish", "JobFailure", "JobRunner", "Outcome"]

SOURCE = "genstream/worker"
DUE_HEADER = "genstream-due-ms"
"""On the retry topic: when (epoch ms) the attempt may go back to its tier topic."""

_log = logging.getLogger(__name__)
_tracer = tracer(__name__)

PipelineProvider = Callable[[JobType], Pipeline]


@dataclass(frozen=True, slots=True)
class Outcome:
    how: str
    """completed, failed, retried, cancelled, expired, duplicate"""


Finish = Callable[[], list["Outcome"]]
"""Ends a batch that has run: uploads, end writes; returns each job's outcome in order."""


class _Stop:
    """Why a running job must stop, set from outside its thread."""

    def __init__(self, control: JobControl, job_id: str, deadline: float) -> None:
        self._control, self._job_id, self._deadline = control, job_id, deadline

    def check(self) -> None:
        reason = self._control.cancel_reason(self._job_id)
        if reason is not None:
            raise JobStopped(f"cancelled: {reason}")
        if time.monotonic() > self._deadline:
            raise JobStopped("timeout")


_End = Callable[[], Outcome]
"""One job's part of a finish."""


def _ended(outcome: Outcome) -> _End:
    return lambda: outcome


class _Previews:
    """A job's preview uploads, done off the job's thread so the device does not wait on the
    object store; the job's end waits for them, so its previews come before it."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        self._pending: list[Future[None]] = []

    def submit(self, write: Callable[[], None]) -> None:
        self._pending.append(self._pool.submit(write))

    def wait(self) -> None:
        for pending in self._pending:
            try:
                pending.result()
            except Exception:
                # A preview is a courtesy: the job's own end is what must be written.
                _log.warning("a preview was not stored", exc_info=True)
        self._pending.clear()


class JobRunner:
    def __init__(
        self,
        settings: WorkerSettings,
        *,
        topology: WorkerTopology,
        producer: EventProducer,
        store: ObjectStore,
        control: JobControl,
        pipelines: PipelineProvider,
    ) -> None:
        self._settings = settings
        self._topology = topology
        self._producer = producer
        self._store = store
        self._control = control
        self._pipelines = pipelines
        self._input_bounds = InputBounds(
            max_pixels=settings.worker_max_input_pixels,
            max_duration_s=settings.worker_max_input_duration_s,
        )
        self._work_root = settings.worker_work_dir
        self._work_root.mkdir(parents=True, exist_ok=True)
        self._preview_pool = ThreadPoolExecutor(1, thread_name_prefix="job-preview")

    # -- writing -------------------------------------------------------------------------------
    def _envelope(self, cause: Envelope[JobQueued], data: Event, event_id: str | None) -> Any:
        return Envelope.wrap(
            data,
            user_id=cause.user_id,
            source=SOURCE,
            trace=event_trace(cause.trace),
            event_id=event_id,
        )

    def _emit(
        self, spec: TopicSpec, cause: Envelope[JobQueued], data: Event, *, event_id: str | None
    ) -> None:
        self._producer.produce(spec, self._envelope(cause, data, event_id))

    def _emit_durably(
        self, spec: TopicSpec, cause: Envelope[JobQueued], data: Event, *, event_id: str | None
    ) -> None:
        self._producer.send_and_wait(
            spec,
            self._envelope(cause, data, event_id),
            timeout_s=self._settings.worker_end_write_timeout_s,
        )

    def _end(self, cause: Envelope[JobQueued], data: Event, *, attempt: int | None) -> None:
        self._emit_durably(
            self._topology.lifecycle, cause, data, event_id=derived_event_id(data, attempt=attempt)
        )
        self._control.note_finished(cause.data.job_id, data.wire_type())

    # -- the job -------------------------------------------------------------------------------
    def handle(self, cause: Envelope[JobQueued], tier: Tier) -> Outcome:
        return self.handle_batch([(cause, tier)])[0]

    def handle_batch(self, jobs: list[tuple[Envelope[JobQueued], Tier]]) -> list[Outcome]:
        return self.start_batch(jobs)()

    def start_batch(self, jobs: list[tuple[Envelope[JobQueued], Tier]]) -> Finish:
        """Runs compatible jobs together when the pipeline can; each ends on its own, when
        the returned finish is called."""
        ends: dict[str, _End] = {}
        runnable: list[tuple[Envelope[JobQueued], Tier]] = []
        for cause, tier in jobs:
            with self._logged(cause):
                gated = self._gate(cause)
            if gated is None:
                runnable.append((cause, tier))
            else:
                ends[cause.id] = _ended(self._record(cause, tier, gated))
        if len(runnable) > 1:
            ends.update(self._run_together(runnable))
        else:
            for cause, tier in runnable:
                ends[cause.id] = self._run_alone(cause, tier)

        def finish() -> list[Outcome]:
            return [ends[cause.id]() for cause, _ in jobs]

        return finish

    def _span(self, cause: Envelope[JobQueued], name: str, tier: Tier) -> Any:
        attributes = {
            "genstream.job_id": cause.data.job_id,
            "genstream.job_type": cause.data.job_type.value,
            "genstream.tier": tier.value,
            "genstream.attempt": cause.data.attempt,
            "genstream.worker_id": self._settings.worker_id,
        }
        return span_from(_tracer, name, cause.trace, attributes=attributes)

    def _logged(self, cause: Envelope[JobQueued]) -> Any:
        return log_context(
            job_id=cause.data.job_id, trace_id=TraceParent.parse(cause.trace).trace_id
        )

    def _record(self, cause: Envelope[JobQueued], tier: Tier, outcome: Outcome) -> Outcome:
        with self._logged(cause):
            metrics.OUTCOMES.labels(outcome.how).inc()
            metrics.JOB_OUTCOMES.labels(cause.data.job_type.value, tier.value, outcome.how).inc()
            _log.info(
                "job %s", outcome.how, extra={"attempt": cause.data.attempt, "tier": tier.value}
            )
        return outcome

    def _gate(self, cause: Envelope[JobQueued]) -> Outcome | None:
        """Ends a job that must not run (finished, cancelled, expired); None if it may run."""
        job = cause.data
        if self._control.finished(job.job_id) is not None:
            return Outcome("duplicate")
        reason = self._control.cancel_reason(job.job_id)
        if reason is not None:
            self._end(cause, JobCancelled(job_id=job.job_id, reason=reason), attempt=None)
            return Outcome("cancelled")
        if job.attempt == 1 and job.deadline is not None and job.deadline <= datetime.now(UTC):
            expired = JobExpired(job_id=job.job_id, reason=EXPIRED_REASON, deadline=job.deadline)
            self._end(cause, expired, attempt=None)
            return Outcome("expired")
        return None

    def _begin(self, cause: Envelope[JobQueued], tier: Tier) -> float:
        job = cause.data
        waited = (datetime.now(UTC) - cause.time).total_seconds()
        metrics.QUEUE_WAIT.labels(self._topology.workload.value, tier.value).observe(
            max(0.0, waited)
        )
        # From queued to started: the queued event's time is when the wait began.
        with span_from(_tracer, "job.queue_wait", cause.trace, start=cause.time) as span:
            span.set_attribute("genstream.tier", tier.value)
        started = JobStarted(
            job_id=job.job_id, worker_id=self._settings.worker_id, attempt=job.attempt
        )
        self._emit(self._topology.lifecycle, cause, started, event_id=None)
        return time.monotonic()

    def _run_alone(self, cause: Envelope[JobQueued], tier: Tier) -> _End:
        with self._logged(cause), self._span(cause, "job.run", tier):
            begun = self._begin(cause, tier)
            work_dir = self._work_dir(cause)
            previews = _Previews(self._preview_pool)
            try:
                ctx = self._context(cause, work_dir, previews)
                ctx.check()
                result = self._pipelines(cause.data.job_type).run(ctx)
            except Exception as exc:
                return self._failure(cause, tier, previews, exc, time.monotonic() - begun)
            finally:
                shutil.rmtree(work_dir, ignore_errors=True)
            ran_s = time.monotonic() - begun
            return self._completion(cause, tier, previews, result, ran_s)

    def _failure(
        self,
        cause: Envelope[JobQueued],
        tier: Tier,
        previews: _Previews,
        error: Exception,
        ran_s: float,
    ) -> _End:
        # A parameter, not the except clause's name, which is gone once the clause ends.
        return self._ender(cause, tier, previews, lambda: self._settle_error(cause, ran_s, error))

    def _ender(
        self,
        cause: Envelope[JobQueued],
        tier: Tier,
        previews: _Previews,
        end: Callable[[], Outcome],
    ) -> _End:
        def ending() -> Outcome:
            with self._logged(cause), self._span(cause, "job.end", tier):
                previews.wait()
                outcome = end()
            return self._record(cause, tier, outcome)

        return ending

    def _run_together(self, jobs: list[tuple[Envelope[JobQueued], Tier]]) -> dict[str, _End]:
        pipeline = self._pipelines(jobs[0][0].data.job_type)
        run_batch = getattr(pipeline, "run_batch", None)
        if run_batch is None:
            return {cause.id: self._run_alone(cause, tier) for cause, tier in jobs}
        metrics.BATCH_SIZE.labels(jobs[0][0].data.job_type.value).observe(len(jobs))
        begun = [self._begin(cause, tier) for cause, tier in jobs]
        work_dirs = [self._work_dir(cause) for cause, _ in jobs]
        previews = [_Previews(self._preview_pool) for _ in jobs]
        try:
            contexts = [
                self._context(cause, work_dir, shots)
                for (cause, _), work_dir, shots in zip(jobs, work_dirs, previews, strict=True)
            ]
            results: list[PipelineResult] = run_batch(contexts)
        except Exception:
            # One job's cancellation or error stops the whole batch; each then runs alone,
            # where it meets its own end (cancelled, retried, failed or done).
            _log.info("a batch of %d stopped; running its jobs one by one", len(jobs))
            for shots in previews:
                shots.wait()
            return {cause.id: self._run_alone(cause, tier) for cause, tier in jobs}
        finally:
            for work_dir in work_dirs:
                shutil.rmtree(work_dir, ignore_errors=True)
        ended = time.monotonic()
        return {
            cause.id: self._completion(cause, tier, shots, result, ended - start)
            for (cause, tier), shots, result, start in zip(
                jobs, previews, results, begun, strict=True
            )
        }

    def _completion(
        self,
        cause: Envelope[JobQueued],
        tier: Tier,
        previews: _Previews,
        result: PipelineResult,
        ran_s: float,
    ) -> _End:
        return self._ender(cause, tier, previews, lambda: self._complete(cause, result, ran_s))

    def _work_dir(self, cause: Envelope[JobQueued]) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{cause.data.job_id[:40]}-", dir=self._work_root))

    def _complete(
        self, cause: Envelope[JobQueued], result: PipelineResult, ran_s: float
    ) -> Outcome:
        job = cause.data
        try:
            with _tracer.start_as_current_span("job.output_upload"):
                outputs = self._store_outputs(cause, result)
        except TransientError as exc:
            return self._fail(cause, ran_s, "transient_error", str(exc), True)
        completed = JobCompleted(
            job_id=job.job_id,
            attempt=job.attempt,
            worker_id=self._settings.worker_id,
            outputs=outputs,
            run_ms=int(ran_s * 1000),
            usage_units=result.usage_units,
        )
        self._end(cause, completed, attempt=job.attempt)
        self._observe_run(cause, ran_s, "completed")
        return Outcome("completed")

    def _settle_error(self, cause: Envelope[JobQueued], ran_s: float, exc: Exception) -> Outcome:
        job = cause.data
        match exc:
            case JobStopped() if exc.why.startswith("cancelled"):
                reason = self._control.cancel_reason(job.job_id) or "cancelled"
                self._end(cause, JobCancelled(job_id=job.job_id, reason=reason), attempt=None)
                self._observe_run(cause, ran_s, "cancelled")
                return Outcome("cancelled")
            case JobStopped():
                return self._fail(cause, ran_s, "timeout", "the job ran past its time limit", False)
            case PermanentError():
                return self._fail(cause, ran_s, exc.code, str(exc), False)
            case TransientError():
                return self._fail(cause, ran_s, "transient_error", str(exc), True)
        # An error nobody classified may be a passing one: it gets its retries.
        _log.error("pipeline error", exc_info=exc)
        return self._fail(cause, ran_s, "internal_error", f"{type(exc).__name__}: {exc}", True)

    def _observe_run(self, cause: Envelope[JobQueued], ran_s: float, outcome: str) -> None:
        metrics.RUN_TIME.labels(cause.data.job_type.value, outcome).observe(ran_s)

    def _context(
        self, cause: Envelope[JobQueued], work_dir: Path, previews: _Previews
    ) -> RunContext:
        """The job's run context: its downloaded inputs and its progress, preview and stop
        callbacks, which write to the progress and lifecycle topics."""
        job = cause.data
        stop = _Stop(
            self._control, job.job_id, time.monotonic() + self._settings.timeout_s(job.job_type)
        )
        inputs: dict[str, Path] = {}
        if isinstance(job.input, ImageEditInput | VideoEnhanceInput):
            uploads = [job.input.upload_id]
            if isinstance(job.input, ImageEditInput) and job.input.mask_upload_id is not None:
                uploads.append(job.input.mask_upload_id)
            for upload_id in uploads:
                path, measured = self._store.download_upload(
                    cause.user_id, upload_id, work_dir / f"input-{len(inputs)}"
                )
                check_input(path, measured, self._input_bounds, upload_id=upload_id)
                inputs[upload_id] = path
        throttle = ProgressThrottle(self._settings.worker_progress_interval_ms / 1000)
        run_span = current_span()
        lock = threading.Lock()
        known = [0, 1]
        """The latest step and total reported, so a late preview never moves progress back."""

        def progress(
            step: int,
            total: int,
            message: str | None,
            *,
            force: bool = False,
            blurhash: str | None = None,
        ) -> None:
            if run_span.is_recording():
                run_span.add_event("step", {"step": step, "total": total})
            with lock:
                known[:] = [max(known[0], step), total]
                if not throttle.admit(step, total, force=force):
                    return
            total = max(total, step)
            percent = 100.0 if total == 0 else round(100.0 * step / total, 2)
            event = JobProgress(
                job_id=job.job_id,
                attempt=job.attempt,
                percent=percent,
                step=step,
                total_steps=total,
                message=message[:500] if message else None,
                blurhash=blurhash,
            )
            self._emit(self._topology.progress, cause, event, event_id=None)

        def store_preview(shot: Preview) -> None:
            key = output_key(cause.user_id, job.job_id, f"preview-{job.attempt}-{shot.step}")
            self._store.put_output(key, shot.data, shot.content_type)
            event = JobPreview(
                job_id=job.job_id,
                attempt=job.attempt,
                step=shot.step,
                preview_key=key,
                blurhash=shot.blurhash,
                content_type=shot.content_type,
            )
            self._emit(self._topology.lifecycle, cause, event, event_id=None)
            # A preview always reaches the progress stream, whatever the throttle says.
            with lock:
                step, total = max(shot.step, known[0]), known[1]
            progress(step, max(step, total), "preview", force=True, blurhash=shot.blurhash)

        def preview(shot: Preview) -> None:
            previews.submit(lambda: traced_preview(shot))

        def traced_preview(shot: Preview) -> None:
            # In a thread of its own: its events name the run's span, ended or not.
            with use_span(run_span, end_on_exit=False):
                store_preview(shot)

        progress(0, 1, "started", force=True)
        return RunContext(
            job_id=job.job_id,
            input=job.input,
            attempt=job.attempt,
            input_files=inputs,
            work_dir=work_dir,
            progress=lambda step, total, message: progress(step, total, message),
            preview=preview,
            check=stop.check,
        )

    def _store_outputs(
        self, cause: Envelope[JobQueued], result: PipelineResult
    ) -> tuple[OutputFile, ...]:
        stored = []
        for artifact in result.outputs:
            key = output_key(cause.user_id, cause.data.job_id, artifact.name)
            self._store.put_output(key, artifact.data, artifact.content_type)
            stored.append(
                OutputFile(
                    key=key,
                    size=len(artifact.data),
                    content_type=artifact.content_type,
                    blurhash=artifact.blurhash,
                    duration_s=artifact.duration_s,
                    width=artifact.width,
                    height=artifact.height,
                )
            )
        return tuple(stored)

    # -- failures ------------------------------------------------------------------------------
    def _fail(
        self, cause: Envelope[JobQueued], ran_s: float, code: str, message: str, retryable: bool
    ) -> Outcome:
        job = cause.data
        self._observe_run(cause, ran_s, "failed")
        if retryable and job.attempt < self._settings.worker_max_attempts:
            delay = retry_delay_ms(
                job.attempt,
                base_ms=self._settings.worker_retry_base_ms,
                max_ms=self._settings.worker_retry_max_ms,
            )
            retried = JobRetried(
                job_id=job.job_id,
                attempt=job.attempt + 1,
                delay_ms=delay,
                error_code=code,
                error_message=message[:4000],
            )
            again = job.model_copy(update={"attempt": job.attempt + 1})
            self._emit_durably(
                self._topology.lifecycle,
                cause,
                retried,
                event_id=derived_event_id(retried, attempt=retried.attempt),
            )
            envelope = self._envelope(cause, again, derived_event_id(again, attempt=again.attempt))
            due = int(time.time() * 1000) + delay
            self._producer.send_raw(
                self._topology.retry.name,
                key=partition_key(envelope, self._topology.retry),
                value=encode(envelope),
                headers=[*kafka_headers(envelope), (DUE_HEADER, str(due).encode())],
                timeout_s=self._settings.worker_end_write_timeout_s,
            )
            return Outcome("retried")
        exhausted = retryable
        failed = JobFailed(
            job_id=job.job_id,
            attempt=job.attempt,
            error_code="retries_exhausted" if exhausted else code,
            error_message=message[:4000],
            retryable=False,
        )
        self._park(cause, f"{failed.error_code}: {message}")
        self._end(cause, failed, attempt=None)
        return Outcome("failed")

    def _park(self, cause: Envelope[JobQueued], reason: str) -> None:
        metrics.DEAD_LETTERS.labels("job_failed").inc()
        headers = parked_headers(
            kafka_headers(cause),
            topic=self._topology.all_tiers[cause.data.topic].name,
            partition=None,
            offset=None,
            consumer=self._settings.group_id,
            error=JobFailure(reason),
        )
        self._producer.send_raw(
            self._topology.deadletter.name,
            key=cause.data.job_id.encode(),
            value=encode(cause),
            headers=headers,
            timeout_s=self._settings.worker_end_write_timeout_s,
        )


class JobFailure(Exception):  # noqa: N818 - named for what it records
    """Why a job was parked: its last error, as the dead-letter headers tell it."""
