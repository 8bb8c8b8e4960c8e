"""The topics a workload's workers read and write, under one optional name prefix."""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts import (
    DEADLETTER,
    JOBS_LIFECYCLE,
    JOBS_PROGRESS,
    JOBS_REQUESTED,
    JOBS_RETRY,
    TIER_TOPICS,
    Tier,
    TopicSpec,
    Workload,
)


@dataclass(frozen=True)
class WorkerTopology:
    workload: Workload
    prefix: str = ""
    tiers: dict[Tier, TopicSpec] = field(init=False)
    """This workload's dispatch topics by tier."""
    all_tiers: dict[str, TopicSpec] = field(init=False)
    """Every workload's dispatch topics by contract name (``JobQueued.topic``)."""
    lifecycle: TopicSpec = field(init=False)
    progress: TopicSpec = field(init=False)
    requested: TopicSpec = field(init=False)
    retry: TopicSpec = field(init=False)
    deadletter: TopicSpec = field(init=False)

    def __post_init__(self) -> None:
        def named(spec: TopicSpec) -> TopicSpec:
            return spec.prefixed(self.prefix) if self.prefix else spec

        tiers = {tier: named(TIER_TOPICS[(self.workload, tier)]) for tier in Tier}
        object.__setattr__(self, "tiers", tiers)
        all_tiers = {spec.name: named(spec) for spec in TIER_TOPICS.values()}
        object.__setattr__(self, "all_tiers", all_tiers)
        object.__setattr__(self, "lifecycle", named(JOBS_LIFECYCLE))
        object.__setattr__(self, "progress", named(JOBS_PROGRESS))
        object.__setattr__(self, "requested", named(JOBS_REQUESTED))
        object.__setattr__(self, "retry", named(JOBS_RETRY))
        object.__setattr__(self, "deadletter", named(DEADLETTER))

    def tier_of(self, topic: str) -> Tier:
        for tier, spec in self.tiers.items():
            if spec.name == topic:
                return tier
        raise KeyError(topic)

    @property
    def all_topics(self) -> tuple[TopicSpec, ...]:
        return (
            *self.all_tiers.values(),
            self.lifecycle,
            self.progress,
            self.requested,
            self.retry,
            self.deadletter,
        )
