"""Runs one dispatched job to its end and writes what happened.

The end of a job is exactly one of: completed, failed (to the dead-letter topic), retried
later (through the retry topic), cancelled or expired; each is written and acknowledged by
the brokers before the runner returns, so the caller may then commit the dispatch. Events
a job has once per attempt carry ids derived from the job and attempt: a job run again
after a worker died writes the same ids, and every reader keeps one copy.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    child_traceparent,
    derived_event_id,
    encode,
    kafka_headers,
    partition_key,
)
from contracts.traceparent import TraceParent
from genstream.kafka.deadletter import parked_headers
from genstream.logs import log_context
from gpu_consumers import metrics
from gpu_consumers.backoff import retry_delay_ms
from gpu_consumers.control import JobControl
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

__all__ = ["DUE_HEADER", "JobFailure", "JobRunner", "Outcome"]

SOURCE = "genstream/worker"
DUE_HEADER = "genstream-due-ms"
"""On the retry topic: when (epoch ms) the attempt may go back to its tier topic."""

_log = logging.getLogger(__name__)

PipelineProvider = Callable[[JobType], Pipeline]


@dataclass(frozen=True, slots=True)
class Outcome:
    how: str
    """completed, failed, retried, cancelled, expired, duplicate"""


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
        self._work_root = settings.worker_work_dir
        self._work_root.mkdir(parents=True, exist_ok=True)

    # -- writing -------------------------------------------------------------------------------
    def _envelope(self, cause: Envelope[JobQueued], data: Event, event_id: str | None) -> Any:
        return Envelope.wrap(
            data,
            user_id=cause.user_id,
            source=SOURCE,
            trace=child_traceparent(cause.trace),
            event_id=event_id,
        )

    def _emit(
        self, spec: TopicSpec, cause: Envelope[JobQueued], data: Event, *, event_id: str | None
    ) -> None:
        self._producer.produce(spec, self._envelope(cause, data, event_id))

    def _emit_durably(
        self, spec: TopicSpec, cause: Envelope[JobQueued], data: Event, *, event_id: str | None
    ) -> None:
        self._producer.send_and_wait(spec, self._envelope(cause, data, event_id))

    def _end(self, cause: Envelope[JobQueued], data: Event, *, attempt: int | None) -> None:
        self._emit_durably(
            self._topology.lifecycle, cause, data, event_id=derived_event_id(data, attempt=attempt)
        )
        self._control.note_finished(cause.data.job_id, data.wire_type())

    # -- the job -------------------------------------------------------------------------------
    def handle(self, cause: Envelope[JobQueued], tier: Tier) -> Outcome:
        job = cause.data
        with log_context(job_id=job.job_id, trace_id=TraceParent.parse(cause.trace).trace_id):
            outcome = self._handle(cause, tier)
            metrics.OUTCOMES.labels(outcome.how).inc()
            _log.info("job %s", outcome.how, extra={"attempt": job.attempt, "tier": tier.value})
            return outcome

    def _handle(self, cause: Envelope[JobQueued], tier: Tier) -> Outcome:
        job = cause.data
        if self._control.finished(job.job_id) is not None:
            return Outcome("duplicate")
        reason = self._control.cancel_reason(job.job_id)
        if reason is not None:
            self._end(cause, JobCancelled(job_id=job.job_id, reason=reason), attempt=None)
            return Outcome("cancelled")
        now = datetime.now(UTC)
        if job.attempt == 1 and job.deadline is not None and job.deadline <= now:
            expired = JobExpired(job_id=job.job_id, reason=EXPIRED_REASON, deadline=job.deadline)
            self._end(cause, expired, attempt=None)
            return Outcome("expired")

        metrics.QUEUE_WAIT.labels(self._topology.workload.value, tier.value).observe(
            max(0.0, (now - cause.time).total_seconds())
        )
        started = JobStarted(
            job_id=job.job_id, worker_id=self._settings.worker_id, attempt=job.attempt
        )
        self._emit(self._topology.lifecycle, cause, started, event_id=None)
        begun = time.monotonic()
        work_dir = Path(tempfile.mkdtemp(prefix=f"{job.job_id[:40]}-", dir=self._work_root))
        try:
            result = self._run(cause, work_dir)
        except JobStopped as stop:
            if stop.why.startswith("cancelled"):
                reason = self._control.cancel_reason(job.job_id) or "cancelled"
                self._end(cause, JobCancelled(job_id=job.job_id, reason=reason), attempt=None)
                self._observe_run(cause, begun, "cancelled")
                return Outcome("cancelled")
            return self._fail(cause, begun, "timeout", "the job ran past its time limit", False)
        except PermanentError as exc:
            return self._fail(cause, begun, "permanent_error", str(exc), False)
        except TransientError as exc:
            return self._fail(cause, begun, "transient_error", str(exc), True)
        except Exception as exc:
            # An error nobody classified may be a passing one: it gets its retries.
            _log.exception("pipeline error")
            return self._fail(cause, begun, "internal_error", f"{type(exc).__name__}: {exc}", True)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
        run_ms = int((time.monotonic() - begun) * 1000)
        outputs = self._store_outputs(cause, result)
        completed = JobCompleted(
            job_id=job.job_id,
            attempt=job.attempt,
            worker_id=self._settings.worker_id,
            outputs=outputs,
            run_ms=run_ms,
            usage_units=result.usage_units,
        )
        self._end(cause, completed, attempt=job.attempt)
        self._observe_run(cause, begun, "completed")
        return Outcome("completed")

    def _observe_run(self, cause: Envelope[JobQueued], begun: float, outcome: str) -> None:
        metrics.RUN_TIME.labels(cause.data.job_type.value, outcome).observe(
            time.monotonic() - begun
        )

    def _run(self, cause: Envelope[JobQueued], work_dir: Path) -> PipelineResult:
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
                inputs[upload_id] = self._store.download_upload(
                    cause.user_id, upload_id, work_dir / f"input-{len(inputs)}"
                )
        pipeline = self._pipelines(job.job_type)
        throttle = ProgressThrottle(self._settings.worker_progress_interval_ms / 1000)
        lock = threading.Lock()

        def progress(step: int, total: int, message: str | None, *, force: bool = False) -> None:
            with lock:
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
            )
            self._emit(self._topology.progress, cause, event, event_id=None)

        def preview(shot: Preview) -> None:
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

        progress(0, 1, "started", force=True)
        ctx = RunContext(
            job_id=job.job_id,
            input=job.input,
            attempt=job.attempt,
            input_files=inputs,
            work_dir=work_dir,
            progress=lambda step, total, message: progress(step, total, message),
            preview=preview,
            check=stop.check,
        )
        stop.check()
        result = pipeline.run(ctx)
        return result

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
        self, cause: Envelope[JobQueued], begun: float, code: str, message: str, retryable: bool
    ) -> Outcome:
        job = cause.data
        self._observe_run(cause, begun, "failed")
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
        )


class JobFailure(Exception):  # noqa: N818 - named for what it records
    """Why a job was parked: its last error, as the dead-letter headers tell it."""
