"""Job commands and lifecycle events.

``jobs.lifecycle`` is the system of record of a job: requested, accepted or rejected,
queued, started, previews, then exactly one terminal event. ``JobProgress`` is the one
high-rate event and goes to its own short-lived topic instead.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.enums import TERMINAL_STATUSES, JobStatus, JobType, Plan, RejectReason, Tier
from contracts.event import JobEvent
from contracts.fields import (
    BlurHash,
    ContentType,
    ErrorCode,
    ErrorMessage,
    HttpUrlStr,
    Id,
    IdempotencyKey,
    ObjectKey,
    Reason,
    TopicName,
    UtcDatetime,
)
from contracts.inputs import JobInput

__all__ = [
    "JOB_EVENT_TYPES",
    "TERMINAL_STATUSES",
    "JobAccepted",
    "JobCancelRequested",
    "JobCancelled",
    "JobCompleted",
    "JobExpired",
    "JobFailed",
    "JobPreview",
    "JobProgress",
    "JobQueued",
    "JobRejected",
    "JobRequested",
    "JobRetried",
    "JobStarted",
    "JobStatus",
    "JobType",
    "MediaInfo",
    "OutputFile",
    "Plan",
    "RejectReason",
    "Tier",
]

Attempt = Annotated[int, Field(ge=1, le=1000)]
"""1 for the first run of a job, incremented by each retry."""
Step = Annotated[int, Field(ge=0, le=1_000_000)]
Credits = Annotated[int, Field(ge=0)]


def _check_input_kind(job_type: JobType, job_input: BaseModel) -> None:
    kind = getattr(job_input, "kind", None)
    if kind != job_type.value:
        raise ValueError(f"input kind {kind!r} does not match job_type {job_type.value!r}")


class MediaInfo(BaseModel):
    """What the API measured of an uploaded input, so that limits and prices can use it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    content_type: ContentType
    size: Annotated[int, Field(ge=0)]
    duration_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    width: Annotated[int, Field(gt=0)] | None = None
    height: Annotated[int, Field(gt=0)] | None = None


class JobRequested(JobEvent):
    """A user asked for a job; the API emits it once the request is valid."""

    TYPE: ClassVar[str] = "genstream.job.requested"
    VERSION: ClassVar[int] = 1
    ADDED: ClassVar[frozenset[str]] = frozenset({"metadata", "end_user"})

    job_type: JobType
    input: JobInput
    idempotency_key: IdempotencyKey | None = None
    """The client's ``Idempotency-Key``; a repeat with the same key is the same job."""
    webhook_url: HttpUrlStr | None = None
    requested_at: UtcDatetime
    media: MediaInfo | None = None
    """Measurements of the uploaded input, for job types that take one."""
    metadata: dict[str, Any] | None = None
    """The caller's own small JSON object (at most 2,048 bytes), as given."""
    end_user: Id | None = None
    """The caller's id of its own user the job is for."""

    @model_validator(mode="after")
    def _input_matches_type(self) -> JobRequested:
        _check_input_kind(self.job_type, self.input)
        return self


class JobAccepted(JobEvent):
    """Credits were reserved and the plan allows the job."""

    TYPE: ClassVar[str] = "genstream.job.accepted"
    VERSION: ClassVar[int] = 1

    job_type: JobType
    tier: Tier
    credits_reserved: Credits


class JobRejected(JobEvent):
    """The job will not run; terminal."""

    TYPE: ClassVar[str] = "genstream.job.rejected"
    VERSION: ClassVar[int] = 1

    reason: RejectReason
    detail: Annotated[str, Field(max_length=2000)]


class JobQueued(JobEvent):
    """The job was put on a dispatch topic; this is also the message workers consume."""

    TYPE: ClassVar[str] = "genstream.job.queued"
    VERSION: ClassVar[int] = 1

    job_type: JobType
    tier: Tier
    input: JobInput
    attempt: Attempt
    topic: TopicName
    """The topic this dispatch message was written to."""
    webhook_url: HttpUrlStr | None = None
    deadline: UtcDatetime | None = None
    """After this instant the job expires instead of starting."""

    @model_validator(mode="after")
    def _input_matches_type(self) -> JobQueued:
        _check_input_kind(self.job_type, self.input)
        return self


class JobStarted(JobEvent):
    """A worker took the job and began an attempt."""

    TYPE: ClassVar[str] = "genstream.job.started"
    VERSION: ClassVar[int] = 1

    worker_id: Id
    attempt: Attempt


class JobProgress(JobEvent):
    """High-rate progress of a running attempt; ephemeral, never stored row by row."""

    TYPE: ClassVar[str] = "genstream.job.progress"
    VERSION: ClassVar[int] = 1

    attempt: Attempt
    percent: Annotated[float, Field(ge=0, le=100)]
    step: Step
    total_steps: Step
    message: Annotated[str, Field(max_length=500)] | None = None
    preview_url: HttpUrlStr | None = None
    blurhash: BlurHash | None = None

    @model_validator(mode="after")
    def _step_within_total(self) -> JobProgress:
        if self.step > self.total_steps:
            raise ValueError(f"step {self.step} is past total_steps {self.total_steps}")
        return self


class JobPreview(JobEvent):
    """An intermediate image was stored; kept in the lifecycle so it can be shown later."""

    TYPE: ClassVar[str] = "genstream.job.preview"
    VERSION: ClassVar[int] = 1

    attempt: Attempt
    step: Step
    preview_key: ObjectKey
    blurhash: BlurHash | None = None
    content_type: ContentType


class OutputFile(BaseModel):
    """One stored result of a job."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    key: ObjectKey
    size: Annotated[int, Field(ge=0)]
    """Bytes."""
    content_type: ContentType
    blurhash: BlurHash | None = None
    duration_s: Annotated[float, Field(ge=0)] | None = None
    width: Annotated[int, Field(ge=1)] | None = None
    height: Annotated[int, Field(ge=1)] | None = None


class JobCompleted(JobEvent):
    """The job succeeded; terminal. Settlement charges for ``usage_units``."""

    TYPE: ClassVar[str] = "genstream.job.completed"
    VERSION: ClassVar[int] = 1

    attempt: Attempt
    worker_id: Id
    outputs: Annotated[tuple[OutputFile, ...], Field(max_length=100)]
    run_ms: Annotated[int, Field(ge=0)]
    usage_units: Annotated[int, Field(ge=0)]
    """What the job is billed on, per workload: images, video minutes, characters."""


class JobFailed(JobEvent):
    """An attempt failed. Terminal unless a ``JobRetried`` for the next attempt follows."""

    TYPE: ClassVar[str] = "genstream.job.failed"
    VERSION: ClassVar[int] = 1

    attempt: Attempt
    error_code: ErrorCode
    error_message: ErrorMessage
    retryable: bool
    """The worker's judgement; the retry policy decides whether a retry happens."""


class JobRetried(JobEvent):
    """A failed attempt will be retried after ``delay_ms``."""

    TYPE: ClassVar[str] = "genstream.job.retried"
    VERSION: ClassVar[int] = 1

    attempt: Annotated[int, Field(ge=2, le=1000)]
    """The attempt that will run next."""
    delay_ms: Annotated[int, Field(ge=0)]
    error_code: ErrorCode
    error_message: ErrorMessage


class JobCancelRequested(JobEvent):
    """The user asked to cancel; a command, ordered with the user's other commands."""

    TYPE: ClassVar[str] = "genstream.job.cancel_requested"
    VERSION: ClassVar[int] = 1

    reason: Reason | None = None


class JobCancelled(JobEvent):
    """The job was cancelled; terminal."""

    TYPE: ClassVar[str] = "genstream.job.cancelled"
    VERSION: ClassVar[int] = 1

    reason: Reason


class JobExpired(JobEvent):
    """The job passed its deadline before finishing; terminal."""

    TYPE: ClassVar[str] = "genstream.job.expired"
    VERSION: ClassVar[int] = 1

    reason: Reason
    deadline: UtcDatetime


JOB_EVENT_TYPES: Final[tuple[type[JobEvent], ...]] = (
    JobRequested,
    JobAccepted,
    JobRejected,
    JobQueued,
    JobStarted,
    JobProgress,
    JobPreview,
    JobCompleted,
    JobFailed,
    JobRetried,
    JobCancelRequested,
    JobCancelled,
    JobExpired,
)
