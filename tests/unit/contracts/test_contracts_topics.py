"""Topic declarations, routing and partition keys."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts import (
    ALL_TOPICS,
    CREDITS_LEDGER,
    DEADLETTER,
    EVENT_TYPES,
    JOBS_LIFECYCLE,
    JOBS_PROGRESS,
    JOBS_REQUESTED,
    JOBS_RETRY,
    USERS_PLANS,
    CreditsGranted,
    Envelope,
    Event,
    JobProgress,
    JobStarted,
    JobType,
    Plan,
    PlanChanged,
    RoutingError,
    Tier,
    Workload,
    decode,
    partition_key,
    tier_topic,
    tier_topics,
    topic_by_name,
    topics_for_event,
    workload_of,
)
from contracts.topics import TIER_TOPICS, WORKLOADS


def test_topic_names_are_unique() -> None:
    names = [spec.name for spec in ALL_TOPICS]
    assert len(names) == len(set(names)) == 8 + len(Workload) * len(Tier)


@pytest.mark.parametrize("model", EVENT_TYPES, ids=lambda m: m.wire_type())
def test_every_event_type_is_routed_somewhere(model: type[Event]) -> None:
    wire_type = model.wire_type()
    routes = topics_for_event(wire_type)
    assert routes
    assert all(spec.accepts(wire_type) for spec in routes)


def test_only_declared_event_types_are_routed() -> None:
    known = {model.wire_type() for model in EVENT_TYPES}
    for spec in ALL_TOPICS:
        assert spec.event_types <= known
    assert topics_for_event("genstream.job.teleported.v1") == ()


@pytest.mark.parametrize(
    ("job_type", "tier", "name"),
    [
        (JobType.IMAGE_GENERATE, Tier.PRO, "jobs.image.pro"),
        (JobType.IMAGE_EDIT, Tier.CREATOR, "jobs.image.creator"),
        (JobType.VIDEO_GENERATE, Tier.FREE, "jobs.video.free"),
        (JobType.VIDEO_ENHANCE, Tier.PRO, "jobs.video.pro"),
        (JobType.AUDIO_SPEECH, Tier.FREE, "jobs.audio.free"),
        (Workload.VIDEO, Tier.CREATOR, "jobs.video.creator"),
        ("synthetic", "creator", "jobs.synthetic.creator"),
    ],
)
def test_tier_topic_names(job_type: JobType | Workload | str, tier: Tier | str, name: str) -> None:
    assert tier_topic(job_type, tier) == name
    spec = topic_by_name(name)
    assert spec is TIER_TOPICS[workload_of(job_type), Tier(tier)]
    assert (spec.key, spec.partitions, spec.retention_ms) == ("job_id", 6, 7 * 86_400_000)
    assert spec.event_types == {"genstream.job.queued.v1"}


def test_every_job_type_has_a_workload_and_tier_topics_in_priority_order() -> None:
    assert set(WORKLOADS) == set(JobType)
    assert set(WORKLOADS.values()) == set(Workload)
    assert len(TIER_TOPICS) == len(Workload) * len(Tier)
    assert tier_topics(JobType.SYNTHETIC) == (
        "jobs.synthetic.pro",
        "jobs.synthetic.creator",
        "jobs.synthetic.free",
    )


def test_topic_declarations() -> None:
    assert JOBS_REQUESTED.name == "jobs.requested"
    assert JOBS_REQUESTED.key == "user_id"
    assert JOBS_REQUESTED.event_types == {
        "genstream.job.requested.v1",
        "genstream.job.cancel_requested.v1",
    }
    assert (JOBS_RETRY.name, JOBS_RETRY.key) == ("jobs.retry", "job_id")
    assert JOBS_LIFECYCLE.retention_ms == -1
    assert "genstream.job.progress.v1" not in JOBS_LIFECYCLE.event_types
    assert "genstream.job.completed.v1" in JOBS_LIFECYCLE.event_types
    assert JOBS_PROGRESS.event_types == {"genstream.job.progress.v1"}
    assert JOBS_PROGRESS.retention_ms == 3_600_000
    assert CREDITS_LEDGER.key == "user_id"
    assert CREDITS_LEDGER.retention_ms == -1
    assert len(CREDITS_LEDGER.event_types) == 5
    assert USERS_PLANS.config() == {"cleanup.policy": "compact", "retention.ms": "-1"}
    assert DEADLETTER.raw
    assert DEADLETTER.accepts("anything at all")
    assert DEADLETTER.retention_ms == 30 * 86_400_000
    assert all(spec.replication_factor is None for spec in ALL_TOPICS)


def test_prefixed_topics_keep_their_settings() -> None:
    spec = JOBS_LIFECYCLE.prefixed("t123.")
    assert spec.name == "t123.jobs.lifecycle"
    assert spec.event_types == JOBS_LIFECYCLE.event_types
    assert topic_by_name("jobs.lifecycle") is JOBS_LIFECYCLE
    with pytest.raises(KeyError):
        topic_by_name("t123.jobs.lifecycle")


def test_partition_keys_follow_the_spec(samples: dict[str, bytes]) -> None:
    requested = decode(samples["genstream.job.requested.v1"])
    assert partition_key(requested, JOBS_REQUESTED) == requested.user_id.encode()
    assert partition_key(requested, JOBS_LIFECYCLE) == requested.subject.encode()
    assert requested.subject != requested.user_id

    progress = Envelope.wrap(
        JobProgress(job_id="job-9", attempt=1, percent=1, step=1, total_steps=100),
        user_id="user-1",
        source="tests",
    )
    assert partition_key(progress, JOBS_PROGRESS) == b"job-9"

    grant = Envelope.wrap(
        CreditsGranted(amount=5, reason="bonus", idempotency_key="k"),
        user_id="user-1",
        source="tests",
    )
    assert partition_key(grant, CREDITS_LEDGER) == b"user-1"
    plan = PlanChanged(plan=Plan.PRO, effective_at=datetime.now(UTC), idempotency_key="k")
    assert partition_key(Envelope.wrap(plan, user_id="u-2", source="t"), USERS_PLANS) == b"u-2"


def test_partition_key_refuses_the_wrong_topic() -> None:
    started = Envelope.wrap(
        JobStarted(job_id="job-1", worker_id="w", attempt=1), user_id="u", source="tests"
    )
    with pytest.raises(RoutingError):
        partition_key(started, JOBS_PROGRESS)
    assert partition_key(started, DEADLETTER) == b"job-1"
    grant = Envelope.wrap(
        CreditsGranted(amount=5, reason="bonus", idempotency_key="k"), user_id="u", source="t"
    )
    with pytest.raises(RoutingError):
        partition_key(grant, DEADLETTER)


def test_user_keyed_topics_are_co_partitioned() -> None:
    # The processors join these partition by partition; different counts would split a user.
    user_keyed = [spec for spec in ALL_TOPICS if spec.key == "user_id"]
    assert {spec.name for spec in user_keyed} >= {"jobs.requested", "credits.ledger", "users.plans"}
    assert {spec.partitions for spec in user_keyed} == {12}
