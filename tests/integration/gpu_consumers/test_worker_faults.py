"""Workers with the stream processors on the real stack: a killed worker, a cancelled job,
priority under a backlog. Credits are read from what the processors write."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts import JobCancelRequested, SyntheticInput, Tier, Workload
from genstream.settings import StackSettings
from tests.integration.gpu_consumers.harness import Workers, of_type, running_workers, types
from tests.integration.stream_processors.harness import Processors, running_processors


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
