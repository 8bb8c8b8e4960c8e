"""Kafka topics: names, partition keys, retention and the event types each carries.

Keys are chosen so that every stateful consumer sees its state's events in order:
per-user for commands, credits and plans (the processors hold per-user balances), per
job for dispatch and lifecycle. Only what is declared here may be written to a topic.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal

from contracts.credits import CREDIT_EVENT_TYPES
from contracts.enums import JobType, Tier, Workload
from contracts.envelope import Envelope
from contracts.errors import RoutingError
from contracts.event import Event, JobEvent
from contracts.jobs import (
    JOB_EVENT_TYPES,
    JobCancelled,
    JobCancelRequested,
    JobCompleted,
    JobExpired,
    JobFailed,
    JobProgress,
    JobQueued,
    JobRequested,
    JobStarted,
)
from contracts.plans import PlanChanged

__all__ = [
    "ALL_TOPICS",
    "CREDITS_LEDGER",
    "DEADLETTER",
    "FOREVER",
    "JOBS_LIFECYCLE",
    "JOBS_PROGRESS",
    "JOBS_REQUESTED",
    "JOBS_RETRY",
    "TIER_TOPICS",
    "USERS_PLANS",
    "WORKLOADS",
    "TopicSpec",
    "partition_key",
    "tier_topic",
    "tier_topics",
    "topic_by_name",
    "topics_for_event",
    "worker_group",
]

_HOUR_MS: Final = 60 * 60 * 1000
_DAY_MS: Final = 24 * _HOUR_MS
FOREVER: Final = -1


@dataclass(frozen=True, kw_only=True, slots=True)
class TopicSpec:
    """How a topic is created and what may be written to it."""

    name: str
    key: Literal["user_id", "job_id"]
    """What ``partition_key`` puts in the record key."""
    partitions: int
    replication_factor: int | None = None
    """``None`` leaves it to the broker's default."""
    retention_ms: int
    """``-1`` keeps records forever."""
    cleanup_policy: Literal["delete", "compact"] = "delete"
    event_types: frozenset[str]
    """Wire types allowed on the topic; empty for the dead-letter topic, which takes any bytes."""
    description: str

    @property
    def raw(self) -> bool:
        """True for a topic that carries records of any shape (the dead-letter topic)."""
        return not self.event_types

    def accepts(self, wire_type: str) -> bool:
        return self.raw or wire_type in self.event_types

    def config(self) -> dict[str, str]:
        """Topic-level broker configuration for creating the topic."""
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}

    def prefixed(self, prefix: str) -> TopicSpec:
        """The same topic under ``prefix + name``, for isolated test or tenant namespaces."""
        return dataclasses.replace(self, name=f"{prefix}{self.name}")


def _types(*models: type[Event]) -> frozenset[str]:
    return frozenset(model.wire_type() for model in models)


WORKLOADS: Final[Mapping[JobType, Workload]] = MappingProxyType(
    {
        JobType.IMAGE_GENERATE: Workload.IMAGE,
        JobType.IMAGE_EDIT: Workload.IMAGE,
        JobType.VIDEO_GENERATE: Workload.VIDEO,
        JobType.VIDEO_ENHANCE: Workload.VIDEO,
        JobType.AUDIO_SPEECH: Workload.AUDIO,
        JobType.SYNTHETIC: Workload.SYNTHETIC,
    }
)
"""The workload (consumer group and tier topics) that serves each job type."""


def workload_of(job_type: JobType | Workload | str) -> Workload:
    if isinstance(job_type, Workload):
        return job_type
    try:
        return WORKLOADS[JobType(job_type)]
    except ValueError:
        return Workload(job_type)


def tier_topic(job_type: JobType | Workload | str, tier: Tier | str) -> str:
    """The dispatch topic of a job type's (or workload's) tier, e.g. ``jobs.image.pro``."""
    return f"jobs.{workload_of(job_type).value}.{Tier(tier).value}"


def tier_topics(job_type: JobType | Workload | str) -> tuple[str, ...]:
    """A workload's dispatch topics in priority order, highest first."""
    return tuple(tier_topic(job_type, tier) for tier in Tier)


def worker_group(workload: Workload | str) -> str:
    """The consumer group of a workload's GPU workers."""
    return f"genstream-workers-{Workload(workload).value}"


USER_PARTITIONS: Final = 12
"""Partitions of every user-keyed topic; equal counts keep a user on one partition number."""

JOBS_REQUESTED: Final = TopicSpec(
    name="jobs.requested",
    key="user_id",
    partitions=USER_PARTITIONS,
    retention_ms=7 * _DAY_MS,
    event_types=_types(JobRequested, JobCancelRequested),
    description=(
        "User commands. Keyed by user so that the processors, which hold per-user credit "
        "state, see each user's commands in order."
    ),
)

TIER_TOPICS: Final[Mapping[tuple[Workload, Tier], TopicSpec]] = MappingProxyType(
    {
        (workload, tier): TopicSpec(
            name=tier_topic(workload, tier),
            key="job_id",
            partitions=6,
            retention_ms=7 * _DAY_MS,
            event_types=_types(JobQueued),
            description=f"Dispatch of {workload.value} jobs in the {tier.value} tier.",
        )
        for workload in Workload
        for tier in Tier
    }
)

JOBS_RETRY: Final = TopicSpec(
    name="jobs.retry",
    key="job_id",
    partitions=6,
    retention_ms=7 * _DAY_MS,
    event_types=_types(JobQueued),
    description="Attempts waiting out their retry delay before going back to a tier topic.",
)

JOBS_LIFECYCLE: Final = TopicSpec(
    name="jobs.lifecycle",
    key="job_id",
    partitions=12,
    retention_ms=FOREVER,
    event_types=_types(*(model for model in JOB_EVENT_TYPES if model is not JobProgress)),
    description="System of record of every job's history; replayable from offset 0.",
)

JOBS_PROGRESS: Final = TopicSpec(
    name="jobs.progress",
    key="job_id",
    partitions=12,
    retention_ms=_HOUR_MS,
    event_types=_types(JobProgress),
    description="High-rate progress of running jobs; ephemeral.",
)

CREDITS_LEDGER: Final = TopicSpec(
    name="credits.ledger",
    key="user_id",
    partitions=USER_PARTITIONS,
    retention_ms=FOREVER,
    event_types=_types(*CREDIT_EVENT_TYPES),
    description="Every credit movement; a user's balance is the sum of their records.",
)

JOB_OUTCOMES: Final = TopicSpec(
    name="jobs.outcomes",
    key="user_id",
    partitions=USER_PARTITIONS,
    retention_ms=7 * _DAY_MS,
    event_types=_types(JobStarted, JobCompleted, JobFailed, JobCancelled, JobExpired),
    description=(
        "What happened to running jobs, re-keyed by user from the lifecycle so that the "
        "processors settle or release credits in the user's partition."
    ),
)

USERS_PLANS: Final = TopicSpec(
    name="users.plans",
    key="user_id",
    # As many as the other user-keyed topics: the processors join them partition by partition.
    partitions=USER_PARTITIONS,
    retention_ms=FOREVER,
    cleanup_policy="compact",
    event_types=_types(PlanChanged),
    description="Each user's current plan; compacted to the latest change per user.",
)

DEADLETTER: Final = TopicSpec(
    name="genstream.deadletter",
    key="job_id",
    partitions=6,
    retention_ms=30 * _DAY_MS,
    event_types=frozenset(),
    description=(
        "Records no consumer could handle, as received, keyed by job id where known and "
        "otherwise by the original key."
    ),
)

ALL_TOPICS: Final[tuple[TopicSpec, ...]] = (
    JOBS_REQUESTED,
    *TIER_TOPICS.values(),
    JOBS_RETRY,
    JOBS_LIFECYCLE,
    JOBS_PROGRESS,
    CREDITS_LEDGER,
    JOB_OUTCOMES,
    USERS_PLANS,
    DEADLETTER,
)

_BY_NAME: Final[Mapping[str, TopicSpec]] = MappingProxyType({t.name: t for t in ALL_TOPICS})


def topic_by_name(name: str) -> TopicSpec:
    """The spec of a topic; raises ``KeyError`` for a name not declared here."""
    return _BY_NAME[name]


def topics_for_event(wire_type: str) -> tuple[TopicSpec, ...]:
    """The topics that carry ``wire_type`` (the dead-letter topic aside)."""
    return tuple(t for t in ALL_TOPICS if not t.raw and wire_type in t.event_types)


def partition_key(envelope: Envelope[Any], spec: TopicSpec) -> bytes:
    """The record key for writing ``envelope`` to ``spec``'s topic.

    Raises ``RoutingError`` when the topic does not carry the event's type, or is keyed
    by job and the event concerns no job. Dead-letter writers keep the original record's
    key instead when the record did not decode.
    """
    if not spec.accepts(envelope.type):
        raise RoutingError(f"{envelope.type!r} does not belong on {spec.name!r}")
    if spec.key == "user_id":
        return envelope.user_id.encode()
    if isinstance(envelope.data, JobEvent):
        return envelope.data.job_id.encode()
    raise RoutingError(f"{envelope.type!r} has no job id to key {spec.name!r} by")
