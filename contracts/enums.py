"""Enumerations shared by job commands, job inputs and topics.

They live apart from ``jobs`` only so that ``inputs`` can use them without an import
cycle; ``contracts.jobs`` re-exports them.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "TERMINAL_STATUSES",
    "JobStatus",
    "JobType",
    "Plan",
    "RejectReason",
    "Tier",
    "Workload",
]


class JobType(StrEnum):
    """What a job asks a worker to do; also selects the input model and the workload."""

    IMAGE_GENERATE = "image.generate"
    IMAGE_EDIT = "image.edit"
    VIDEO_GENERATE = "video.generate"
    VIDEO_ENHANCE = "video.enhance"
    AUDIO_SPEECH = "audio.speech"
    SYNTHETIC = "synthetic"


class Workload(StrEnum):
    """A family of job types served by one consumer group (one kind of model and GPU)."""

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    SYNTHETIC = "synthetic"


class Tier(StrEnum):
    """Dispatch priority class. Declared in priority order: iterate to go from first to last."""

    PRO = "pro"
    CREATOR = "creator"
    FREE = "free"


class Plan(StrEnum):
    """A user's subscription plan; its limits and tier are data in ``catalog.toml``."""

    FREE = "FREE"
    CREATOR = "CREATOR"
    PRO = "PRO"


class RejectReason(StrEnum):
    INSUFFICIENT_CREDITS = "insufficient_credits"
    PLAN_LIMIT = "plan_limit"
    RATE_LIMITED = "rate_limited"
    """No longer given: jobs over a plan's concurrency wait their turn (``queue_full`` past
    its waiting bound). Kept so that rejections already on the topics still decode."""
    INVALID_INPUT = "invalid_input"
    QUEUE_FULL = "queue_full"


class JobStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    """Shown, never stored: the owner's cancellation is acknowledged and the job has not
    ended yet (it still ends as cancelled, or as it would have, should it finish first)."""

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES: frozenset[JobStatus] = frozenset(
    {
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
        JobStatus.REJECTED,
        JobStatus.EXPIRED,
    }
)
"""A job reaches exactly one of these and then never changes again."""
