"""Workers with the stream processors on the real stack: a killed worker, a cancelled job,
priority under a backlog. Credits are read from what the processors write."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from contracts import JobCancelRequested, SyntheticInput, Tier, Workload, worker_group
from genstream.kafka.partitioner import partition_for
from genstream.settings import StackSettings
from tests.integration.gpu_consumers.harness import Workers, of_type, running_workers, types
from tests.integration.stream_processors.harness import Processors, running_processors
from tests.polling import poll_until


@pytest.fixture
def system(stack: StackSettings, tmp_path: Path) -> Iterator[tuple[Processors, Workers]]:
    unique = uuid.uuid4().hex[:12]
    with (
        running_processors(stack, unique, tmp_path) as processors,
        running_workers(stack, unique, tmp_path, Workload.SYNTHETIC, start=False) as workers,
    ):
        yield processors, workers


def _events(processors: Processors, workers: Workers, job: str) -> list[Any]:
    processors.seen()
    workers.seen()
    by_id = {e.id: e for e in processors.of_job(job) + workers.of_job(job)}
    return list(by_id.values())


@pytest.mark.timeout(240)
def test_a_worker_killed_mid_job_its_job_completes_elsewhere_and_is_charged_once(
    system: tuple[Processors, Workers], unique: str
) -> None:
    processors, workers = system
    workers.start(2)
    workers.wait_joined()
    user, job = f"u-{unique}", f"job-{unique}"
    processors.grant(user, 5)
    long_job = SyntheticInput(kind="synthetic", steps=40, step_ms=100)
    processors.request(user, job, input=long_job)
    started = workers.wait_for(lambda _: "JobProgress" in types(workers.of_job(job)))
    first = of_type(workers.of_job(job), "JobStarted")[0]
    victim = int(first.worker_id.split("-")[0].removeprefix("w"))
    workers.kill(victim)
    assert started  # the job was running when its worker died
    workers.wait_for(lambda _: "JobCompleted" in types(workers.of_job(job)), timeout_s=120)
    processors.wait_for(lambda _: "CreditsSettled" in types(processors.of_job(job)))

    events = _events(processors, workers, job)
    kinds = types(events)
    starts = of_type(events, "JobStarted")
    assert len(starts) == 2
    assert {s.worker_id for s in starts} == {f"w0-{workers.unique}", f"w1-{workers.unique}"}
    assert kinds.count("JobCompleted") == 1
    assert kinds.count("CreditsReserved") == 1
    (settled,) = of_type(events, "CreditsSettled")
    (reserved,) = of_type(events, "CreditsReserved")
    assert settled.amount == reserved.amount
    assert "CreditsReleased" not in kinds


def test_cancelling_a_running_job_stops_it_and_releases_its_credits(
    system: tuple[Processors, Workers], unique: str
) -> None:
    processors, workers = system
    workers.start(1)
    user, job = f"u-{unique}", f"job-{unique}"
    processors.grant(user, 5)
    processors.request(user, job, input=SyntheticInput(kind="synthetic", steps=600, step_ms=50))
    workers.wait_for(
        lambda _: any(p.step >= 3 for p in of_type(workers.of_job(job), "JobProgress"))
    )
    processors.send(JobCancelRequested(job_id=job, reason="changed my mind"), user_id=user)
    workers.wait_for(lambda _: "JobCancelled" in types(workers.of_job(job)), timeout_s=60)
    processors.wait_for(lambda _: "CreditsReleased" in types(processors.of_job(job)))

    events = _events(processors, workers, job)
    kinds = types(events)
    assert "JobCompleted" not in kinds
    assert "CreditsSettled" not in kinds
    (cancelled,) = of_type(events, "JobCancelled")
    assert cancelled.reason == "changed my mind"
    # 600 steps of 50 ms would take 30 s; it stopped long before.
    assert max(p.step for p in of_type(events, "JobProgress")) < 300


def test_a_queued_job_cancelled_before_any_worker_never_runs(
    system: tuple[Processors, Workers], unique: str
) -> None:
    processors, workers = system
    user, job, after = f"u-{unique}", f"job-{unique}", f"after-{unique}"
    processors.grant(user, 5)
    processors.request(user, job)
    processors.wait_for(lambda _: "JobQueued" in types(processors.of_job(job)))
    processors.send(JobCancelRequested(job_id=job, reason="too slow"), user_id=user)
    processors.wait_for(lambda _: "CreditsReleased" in types(processors.of_job(job)))
    processors.request(user, after)
    workers.start(1)
    workers.wait_for(lambda _: "JobCompleted" in types(workers.of_job(after)))
    assert "JobStarted" not in types(_events(processors, workers, job))


@pytest.mark.timeout(240)
def test_pro_jobs_start_first_behind_a_free_backlog_and_free_still_gets_its_share(
    system: tuple[Processors, Workers], unique: str
) -> None:
    _, workers = system
    quick = {"kind": "synthetic", "steps": 1, "step_ms": 20}
    free = [f"free-{unique}-{n}" for n in range(40)]
    pro = [f"pro-{unique}-{n}" for n in range(10)]
    for job in free:
        workers.dispatch(job, quick, tier=Tier.FREE, wait=False)
    for job in pro:
        workers.dispatch(job, quick, tier=Tier.PRO, wait=False)
    assert workers.producer.flush() == 0
    workers.start(1)
    everything = free + pro
    workers.wait_for(
        lambda seen: (
            sum(1 for e in seen if type(e.data).__name__ == "JobCompleted") >= len(everything)
        ),
        timeout_s=180,
    )
    starts = [
        e.data.job_id
        for e in sorted(workers.seen(), key=lambda e: e.time)
        if type(e.data).__name__ == "JobStarted"
    ]
    first = starts[:14]
    # With 70/20/10 shares, ten pro jobs need about 14 starts; free gets one in ten of them.
    assert set(pro) <= set(first), first
    assert any(job in free for job in first), first


@pytest.mark.timeout(240)
def test_an_end_the_brokers_do_not_acknowledge_is_run_again_and_nothing_behind_it_committed(
    stack: StackSettings, tmp_path: Path, unique: str
) -> None:
    env = {"GENSTREAM_WORKER_END_WRITE_TIMEOUT_S": "2"}
    with running_workers(
        stack, unique, tmp_path, Workload.SYNTHETIC, env=env, start=False
    ) as workers:
        lifecycle = workers.topology.lifecycle.name
        # Records larger than the topic allows are refused: no job's end can be written.
        _set_topic_config(stack, lifecycle, "max.message.bytes", "64")
        workers.start()
        pro = workers.topology.tiers[Tier.PRO]
        first, second = _two_jobs_on_one_partition(unique, pro.partitions)
        for job in (first, second):
            workers.dispatch(job, {"kind": "synthetic", "steps": 2, "step_ms": 10})
        group = f"{workers.topology.prefix}{worker_group(Workload.SYNTHETIC)}"

        poll_until(
            lambda: workers.log().count("a job's end was not written") >= 2,
            what="end failures",
            timeout_s=90.0,
            interval_s=0.2,
        )
        assert _committed(stack, group, pro.name, pro.partitions) == {}

        _set_topic_config(stack, lifecycle, "max.message.bytes", None)
        workers.wait_for(lambda _: workers.ended(first) and workers.ended(second))
        for job in (first, second):
            assert types(workers.of_job(job)).count("JobCompleted") == 1
        # Committed past the second dispatch once both ends are in, and only then.
        poll_until(
            lambda: list(_committed(stack, group, pro.name, pro.partitions).values()) == [2],
            what="the commit",
            timeout_s=90.0,
            interval_s=0.2,
        )


@pytest.mark.timeout(240)
def test_finished_jobs_are_committed_together_and_a_clean_stop_commits_the_last_of_them(
    stack: StackSettings, tmp_path: Path, unique: str
) -> None:
    with running_workers(stack, unique, tmp_path, Workload.SYNTHETIC) as workers:
        pro = workers.topology.tiers[Tier.PRO]
        group = f"{workers.topology.prefix}{worker_group(Workload.SYNTHETIC)}"
        jobs, more = _split(_jobs_on_one_partition(unique, pro.partitions, 45), 40)
        for job in jobs:
            workers.dispatch(job, {"kind": "synthetic", "steps": 0, "step_ms": 0})
        workers.wait_for(lambda _: all(workers.ended(job) for job in jobs))
        # Commits wait a moment for the jobs after them, but no longer than that.
        poll_until(
            lambda: list(_committed(stack, group, pro.name, pro.partitions).values()) == [40],
            what="the commit past the last job",
            timeout_s=30.0,
            interval_s=0.1,
        )
        for job in more:
            workers.dispatch(job, {"kind": "synthetic", "steps": 0, "step_ms": 0})
        workers.wait_for(lambda _: all(workers.ended(job) for job in more))
        workers.stop()
        # Read once, right after the exit: a clean stop commits before it leaves the group.
        assert list(_committed(stack, group, pro.name, pro.partitions).values()) == [45]


def _split(jobs: list[str], at: int) -> tuple[list[str], list[str]]:
    return jobs[:at], jobs[at:]


def _two_jobs_on_one_partition(unique: str, partitions: int) -> tuple[str, str]:
    """Two job ids whose dispatches share a tier partition, so their order is the topic's."""
    first, second = _jobs_on_one_partition(unique, partitions, 2)
    return first, second


def _jobs_on_one_partition(unique: str, partitions: int, count: int) -> list[str]:
    """``count`` job ids whose dispatches share a tier partition (the first one's)."""
    first = f"job-a-{unique}"
    wanted = partition_for(first.encode(), partitions)
    found = [first]
    for index in range(100 * count):
        candidate = f"job-b{index}-{unique}"
        if partition_for(candidate.encode(), partitions) == wanted:
            found.append(candidate)
            if len(found) == count:
                return found
    raise AssertionError(f"fewer than {count} job ids on the first one's partition")


def _set_topic_config(stack: StackSettings, topic: str, name: str, value: str | None) -> None:
    """Sets a topic's config, or with ``None`` puts it back to the broker's default."""
    admin = AdminClient(stack.kafka.librdkafka())
    operation = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
    entry = ConfigEntry(name, value or "", incremental_operation=operation)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def _committed(stack: StackSettings, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed positions on the topic, by partition, where it has one."""
    reader = Consumer(stack.kafka.librdkafka(**{"group.id": group}))
    try:
        asked = [TopicPartition(topic, partition) for partition in range(partitions)]
        found = reader.committed(asked, timeout=10)
    finally:
        reader.close()
    return {tp.partition: tp.offset for tp in found if tp.offset >= 0}
