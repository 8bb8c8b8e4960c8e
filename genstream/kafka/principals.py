"""Who may do what on a secured cluster: every service's principal and what its code uses.

This table is the one place that says which topics each principal reads and writes, which
consumer groups it uses and which transactional ids it takes. ``genstream.kafka.acls``
derives the cluster's SCRAM users and ACLs from it; ``infra/`` hands each service the
credentials of the principal named after it. A service that starts using a topic or a group
is added here, or the brokers refuse it.

Names ending in ``*`` are prefixes: groups named per process (a reader outside any group
still has to name one), the topics and transactional ids Faust derives from the processors'
application id. The principal ``admin`` is the brokers' own and a super user; it creates the
topics and the ACLs, and is never handed to a service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from contracts.enums import Workload
from contracts.topics import (
    CREDITS_LEDGER,
    DEADLETTER,
    JOB_OUTCOMES,
    JOBS_LIFECYCLE,
    JOBS_PROGRESS,
    JOBS_REQUESTED,
    JOBS_RETRY,
    TIER_TOPICS,
    USERS_PLANS,
    tier_topics,
    worker_group,
)

__all__ = [
    "ADMIN",
    "PREFIX",
    "PRINCIPALS",
    "Principal",
    "is_prefix",
    "principal",
    "stem",
]

ADMIN: Final = "admin"
"""The brokers' own principal (inter-broker and controller traffic), a super user."""
PREFIX: Final = "*"
"""Ends a name that stands for every name beginning with what precedes it."""

PROCESSORS_APP_ID: Final = "genstream-processors"
"""The processors' Faust application id: their group, and what their topics and
transactional ids start with."""


def is_prefix(name: str) -> bool:
    return name.endswith(PREFIX)


def stem(name: str) -> str:
    """A name without its prefix mark."""
    return name.removesuffix(PREFIX)


@dataclass(frozen=True, kw_only=True, slots=True)
class Principal:
    """One SCRAM user and everything it is allowed."""

    name: str
    purpose: str
    reads: frozenset[str] = frozenset()
    """Topics it consumes (or looks up positions on)."""
    writes: frozenset[str] = frozenset()
    """Topics it produces to."""
    groups: frozenset[str] = frozenset()
    """Consumer groups it joins, commits in or names."""
    watches: frozenset[str] = frozenset()
    """Consumer groups whose members or positions it only looks at."""
    owns: frozenset[str] = frozenset()
    """Topics it creates for itself, and reads and writes (Faust's changelogs)."""
    transactional_ids: frozenset[str] = frozenset()


def _topics(*names: str | Iterable[str]) -> frozenset[str]:
    found: set[str] = set()
    for name in names:
        found.update([name] if isinstance(name, str) else name)
    return frozenset(found)


_ALL_TIERS: Final = _topics(spec.name for spec in TIER_TOPICS.values())
_PARKING_READERS: Final = _topics(
    JOBS_REQUESTED.name,
    CREDITS_LEDGER.name,
    USERS_PLANS.name,
    JOB_OUTCOMES.name,
    JOBS_LIFECYCLE.name,
    JOBS_RETRY.name,
    _ALL_TIERS,
)
"""The topics whose readers park what they cannot handle, so where a redrive sends it back."""


def _worker(workload: Workload) -> Principal:
    return Principal(
        name=f"worker-{workload.value}",
        purpose=(
            f"GPU workers of the {workload.value} workload: its tier topics in its group; "
            "cancellations and ends from the lifecycle and the commands (job control, "
            "assigned, outside any group); job events, progress, retries and parked jobs"
        ),
        reads=_topics(tier_topics(workload), JOBS_LIFECYCLE.name, JOBS_REQUESTED.name),
        writes=_topics(JOBS_LIFECYCLE.name, JOBS_PROGRESS.name, JOBS_RETRY.name, DEADLETTER.name),
        groups=frozenset({worker_group(workload), "genstream-worker-control"}),
    )


_ALL: Final[tuple[Principal, ...]] = (
    Principal(
        name="api",
        purpose=(
            "the REST API: submissions and cancellations; progress read from the end, "
            "outside any group, for event streams. What it owes the ledger and the plans "
            "goes through the outbox"
        ),
        reads=_topics(JOBS_PROGRESS.name),
        writes=_topics(JOBS_REQUESTED.name),
        groups=frozenset({"genstream-api-progress-" + PREFIX}),
    ),
    Principal(
        name="processors",
        purpose=(
            "the stream processors (Faust): accounts from the commands, the ledger, the "
            "plans and the outcomes; outcomes re-keyed from the lifecycle; acceptances, "
            "rejections, dispatch, credit movements, expiries; requests sent round again "
            "while credits are awaited; tier depth from the workers' positions"
        ),
        reads=_topics(
            JOBS_REQUESTED.name,
            CREDITS_LEDGER.name,
            USERS_PLANS.name,
            JOB_OUTCOMES.name,
            JOBS_LIFECYCLE.name,
        ),
        writes=_topics(
            JOBS_REQUESTED.name,
            CREDITS_LEDGER.name,
            JOB_OUTCOMES.name,
            JOBS_LIFECYCLE.name,
            DEADLETTER.name,
            _ALL_TIERS,
        ),
        groups=frozenset({PROCESSORS_APP_ID}),
        watches=frozenset({"genstream-workers-" + PREFIX}),
        owns=frozenset({f"{PROCESSORS_APP_ID}-{PREFIX}"}),
        transactional_ids=frozenset({f"{PROCESSORS_APP_ID}-{PREFIX}"}),
    ),
    *(_worker(workload) for workload in Workload),
    Principal(
        name="retry-relay",
        purpose="retried attempts moved from the retry topic back to their tier topic when due",
        reads=_topics(JOBS_RETRY.name),
        writes=_topics(_ALL_TIERS, DEADLETTER.name),
        groups=frozenset({"genstream-retry-relay"}),
    ),
    Principal(
        name="outbox-relay",
        purpose=(
            "the transactional outbox: sign-up grants and purchases to the ledger, plan "
            "changes; reads back the ends of those topics to find what is already there"
        ),
        reads=_topics(CREDITS_LEDGER.name, USERS_PLANS.name),
        writes=_topics(CREDITS_LEDGER.name, USERS_PLANS.name),
        groups=frozenset({"genstream-outbox-relay"}),
    ),
    Principal(
        name="projection",
        purpose="the read model's projection from the lifecycle and the ledger; the system's "
        "gauges it serves: every service group's members and lag (positions on the topics "
        "they read) and the dead-letter topic's end",
        reads=_topics(_PARKING_READERS, JOBS_PROGRESS.name, DEADLETTER.name),
        writes=_topics(DEADLETTER.name),
        groups=frozenset({"genstream-projection"}),
        watches=frozenset(
            {
                "genstream-processors",
                "genstream-webhooks",
                "genstream-retry-relay",
                *(worker_group(workload) for workload in Workload),
            }
        ),
    ),
    Principal(
        name="webhooks",
        purpose="the webhook dispatcher's intake from the lifecycle, and progress for the "
        "jobs whose owners subscribed to it",
        reads=_topics(JOBS_LIFECYCLE.name, JOBS_PROGRESS.name),
        groups=frozenset({"genstream-webhooks"}),
    ),
    Principal(
        name="replay",
        purpose=(
            "the replay tools (genstream replay export / rebuild): the lifecycle and the "
            "ledger from their start, outside any group; the projection's positions"
        ),
        reads=_topics(JOBS_LIFECYCLE.name, CREDITS_LEDGER.name),
        groups=frozenset({"genstream-replay-" + PREFIX}),
        watches=frozenset({"genstream-projection"}),
    ),
    Principal(
        name="redrive",
        purpose=(
            "genstream deadletter redrive: parked records sent back to the topic they came "
            "from, which is any topic whose reader parks"
        ),
        reads=_topics(DEADLETTER.name),
        writes=_PARKING_READERS,
        groups=frozenset({"genstream-redrive"}),
    ),
)

PRINCIPALS: Final[Mapping[str, Principal]] = MappingProxyType({p.name: p for p in _ALL})
"""Every service and tool principal by name (``admin`` aside)."""


def principal(name: str) -> Principal:
    """A principal by name; raises ``KeyError`` for one not declared here."""
    return PRINCIPALS[name]
