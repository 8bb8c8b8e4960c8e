"""The status snapshot's verdict and its screen, from facts given by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.catalog import load_catalog
from genstream.status_screen import render_status
from genstream.system_status import (
    DeadLetterCount,
    FinishedMinute,
    GroupState,
    KafkaFacts,
    PartitionLag,
    ReadModelFacts,
    RecentFailure,
    ServiceState,
    StatusScope,
    StatusSnapshot,
    WorkerActivity,
    dead_letter_reason,
    snapshot,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _group(name: str, members: int, lag: int = 0) -> GroupState:
    partitions = [
        PartitionLag(topic="jobs.image.pro", partition=3, committed=10, log_end=10 + lag, lag=lag)
    ]
    return GroupState(
        group=name,
        state="STABLE" if members else "EMPTY",
        members=members,
        lag=lag,
        partitions=partitions,
    )


def _facts(**changes: object) -> tuple[KafkaFacts, ReadModelFacts]:
    kafka = KafkaFacts(
        groups=[_group("genstream-processors", 1), _group("genstream-workers-image", 2, lag=4)],
        tier_depths={"jobs.image.pro": 4},
        dead_letters=[DeadLetterCount(reason="timeout", topic="jobs.image.pro", count=3)],
    )
    model = ReadModelFacts(
        oldest_queued={"image/pro": NOW - timedelta(seconds=90)},
        recent_failures=[
            RecentFailure(
                job_id="job_1",
                type="image.generate",
                tier="pro",
                error_code="timeout",
                error="ran past 60 s",
                finished_at=NOW,
            )
        ],
        reserved_credits=42,
        accounts_with_reservations=2,
        finished_last_hour=[
            FinishedMinute(minute=NOW - timedelta(minutes=2), completed=5, failed=1, other=0),
            FinishedMinute(minute=NOW - timedelta(minutes=1), completed=7, failed=0, other=2),
        ],
        workers=[
            WorkerActivity(
                worker_id="w-image-1",
                running=2,
                job_types=["image.generate"],
                job_ids=["job_7", "job_8"],
                oldest_started_at=NOW - timedelta(seconds=30),
            )
        ],
    )
    return kafka.model_copy(update=changes), model


def _take(kafka: KafkaFacts, model: ReadModelFacts, *, up: bool = True) -> StatusSnapshot:
    services = [
        ServiceState(name="api", up=True, url="u"),
        ServiceState(name="processors", up=up, url="u", detail="refused"),
    ]
    return snapshot(
        scope=StatusScope(),
        services=services,
        kafka=kafka,
        read_model=model,
        catalog=load_catalog(),
        now=NOW,
    )


def test_a_running_system_is_healthy_and_its_tiers_carry_depth_wait_and_ttl() -> None:
    status = _take(*_facts())
    assert status.healthy
    assert status.problems == []
    pro = next(tier for tier in status.tiers if (tier.workload, tier.tier) == ("image", "pro"))
    assert (pro.depth, pro.oldest_wait_s, pro.queue_ttl_s) == (4, 90.0, 21600)
    assert len(status.tiers) == 12
    assert status.reserved_credits == 42


def test_a_service_down_a_group_without_members_and_a_wait_past_ttl_are_problems() -> None:
    kafka, model = _facts(groups=[_group("genstream-workers-video", 0)])
    model = model.model_copy(update={"oldest_queued": {"audio/free": NOW - timedelta(hours=1)}})
    status = _take(kafka, model, up=False)
    assert not status.healthy
    assert status.problems == [
        "processors is down (refused)",
        "audio/free: a job has waited past its TTL",
        "genstream-workers-video has no members",
    ]


def test_the_snapshot_round_trips_through_json() -> None:
    status = _take(*_facts())
    assert StatusSnapshot.model_validate_json(status.model_dump_json()) == status


def test_dead_letter_reasons_name_the_error_code_of_a_failed_job_else_the_refusal() -> None:
    assert (
        dead_letter_reason("JobFailure: retries_exhausted: CUDA out of memory")
        == "retries_exhausted"
    )
    assert (
        dead_letter_reason("UndecodableEventError: not JSON: b'\\x00'") == "UndecodableEventError"
    )
    assert dead_letter_reason("") == "unknown"


def test_the_screen_shows_every_section() -> None:
    kafka, model = _facts()
    screen = render_status(_take(kafka, model, up=False))
    assert "UNHEALTHY" in screen
    assert "processors DOWN" in screen
    assert "image/pro" in screen
    assert "90s" in screen
    assert "genstream-workers-image" in screen
    assert "jobs.image.pro[3] 4" in screen
    assert "dead letters in the last hour: 3" in screen
    assert "timeout" in screen
    assert "job_1" in screen
    assert "reserved credits: 42 (held by 2 account(s))" in screen
    assert "ended in the last hour: 12 completed, 1 failed, 2 other (busiest minute 9)" in screen
    assert "workers running jobs: 1" in screen
    (worker,) = [line for line in screen.splitlines() if "w-image-1" in line]
    assert worker.split()[:4] == ["w-image-1", "2", "running", "image.generate"]
    assert "job_7 job_8" in worker
