"""Which topics the processors read and where each event they cause is written."""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts import (
    CREDITS_LEDGER,
    DEADLETTER,
    JOB_OUTCOMES,
    JOBS_LIFECYCLE,
    JOBS_REQUESTED,
    TIER_TOPICS,
    USERS_PLANS,
    CreditsReleased,
    CreditsReserved,
    CreditsSettled,
    Event,
    JobAccepted,
    JobCancelled,
    JobQueued,
    JobRejected,
    TopicSpec,
)


@dataclass(frozen=True)
class Topology:
    """The topic specs the processors use, all under one optional name prefix."""

    prefix: str = ""
    requested: TopicSpec = field(init=False)
    ledger: TopicSpec = field(init=False)
    plans: TopicSpec = field(init=False)
    lifecycle: TopicSpec = field(init=False)
    outcomes: TopicSpec = field(init=False)
    deadletter: TopicSpec = field(init=False)
    tiers: dict[str, TopicSpec] = field(init=False)

    def __post_init__(self) -> None:
        def named(spec: TopicSpec) -> TopicSpec:
            return spec.prefixed(self.prefix) if self.prefix else spec

        object.__setattr__(self, "requested", named(JOBS_REQUESTED))
        object.__setattr__(self, "ledger", named(CREDITS_LEDGER))
        object.__setattr__(self, "plans", named(USERS_PLANS))
        object.__setattr__(self, "lifecycle", named(JOBS_LIFECYCLE))
        object.__setattr__(self, "outcomes", named(JOB_OUTCOMES))
        object.__setattr__(self, "deadletter", named(DEADLETTER))
        object.__setattr__(self, "tiers", {spec.name: named(spec) for spec in TIER_TOPICS.values()})

    @property
    def account_inputs(self) -> tuple[TopicSpec, ...]:
        """User-keyed, co-partitioned topics feeding the accounts table."""
        return (self.requested, self.ledger, self.plans, self.outcomes)

    @property
    def all_topics(self) -> tuple[TopicSpec, ...]:
        return (*self.account_inputs, self.lifecycle, self.deadletter, *self.tiers.values())

    def destinations(self, event: Event) -> tuple[TopicSpec, ...]:
        """Where an event the processors cause is written."""
        match event:
            case JobQueued():
                return (self.tiers[event.topic], self.lifecycle)
            case JobAccepted() | JobRejected() | JobCancelled():
                return (self.lifecycle,)
            case CreditsReserved() | CreditsSettled() | CreditsReleased():
                return (self.ledger,)
        raise ValueError(f"the processors do not write {type(event).__name__}")
