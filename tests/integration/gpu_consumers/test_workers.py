"""Workers on the real stack: runs, priority, failures, retries, dead letters, expiry."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from contracts import (
    EXPIRED_REASON,
    Envelope,
    JobCancelRequested,
    JobExpired,
    Tier,
    Workload,
    derived_event_id,
)
from genstream.settings import StackSettings
from genstream.storage import s3_client
from tests.integration.gpu_consumers.harness import Workers, of_type, running_workers, types


@pytest.fixture(scope="module")
def workers(stack: StackSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    log_dir = tmp_path_factory.mktemp("workers")
    with running_workers(stack, uuid.uuid4().hex[:12], log_dir, Workload.SYNTHETIC) as running:
        yield running


def synthetic(**fields: Any) -> dict[str, Any]:
    return {"kind": "synthetic", "steps": 4, "step_ms": 10, **fields}


async def _object_size(stack: StackSettings, key: str) -> int:
    async with s3_client(stack.s3) as client:
        head = await client.head_object(Bucket=stack.s3.outputs_bucket, Key=key)
        return int(head["ContentLength"])


def test_a_job_runs_from_its_tier_topic_to_the_store_and_the_lifecycle(
    workers: Workers, stack: StackSettings, unique: str
) -> None:
    job = f"job-{unique}"
    workers.dispatch(job, synthetic(steps=8, output_bytes=5000), user_id=f"u-{unique}")
    workers.wait_for(lambda _: workers.ended(job))
    events = workers.of_job(job)
    kinds = types(events)
    assert kinds.count("JobStarted") == 1
    assert kinds.count("JobCompleted") == 1
    assert "JobPreview" in kinds
    (started,) = of_type(events, "JobStarted")
    assert started.attempt == 1
    assert started.worker_id.startswith("w0-")
    progress = of_type(events, "JobProgress")
    assert progress[0].percent == 0
    assert progress[-1].percent == 100
    assert [p.step for p in progress] == sorted(p.step for p in progress)
    (completed,) = of_type(events, "JobCompleted")
    assert completed.usage_units == 8
    (output,) = completed.outputs
    assert output.key == f"outputs/u-{unique}/{job}/output.bin"
    assert output.size == 5000
    assert asyncio.run(_object_size(stack, output.key)) == 5000
    (preview,) = of_type(events, "JobPreview")
    assert asyncio.run(_object_size(stack, preview.preview_key)) > 0
    # Previews are stored off the job's thread, but the job's end waits for them.
    ordered = [kind for kind in kinds if kind != "JobProgress"]
    assert ordered.index("JobPreview") < ordered.index("JobCompleted")


def test_a_transient_failure_is_retried_and_then_dead_lettered(
    workers: Workers, unique: str
) -> None:
    job = f"job-{unique}"
    workers.dispatch(job, synthetic(fail_at=2))
    workers.wait_for(lambda _: workers.ended(job))
    events = workers.of_job(job)
    retried = of_type(events, "JobRetried")
    assert [r.attempt for r in retried] == [2, 3]
    assert [s.attempt for s in of_type(events, "JobStarted")] == [1, 2, 3]
    (failed,) = of_type(events, "JobFailed")
    assert failed.error_code == "retries_exhausted"
    assert failed.attempt == 3
    assert "JobCompleted" not in types(events)
    parked = [headers for value, headers in workers.parked() if value and job.encode() in value]
    assert len(parked) == 1
    assert b"retries_exhausted" in parked[0]["dlq.error"]


def test_a_failure_that_passes_completes_on_a_later_attempt(workers: Workers, unique: str) -> None:
    job = f"job-{unique}"
    workers.dispatch(job, synthetic(fail_at=1, fail_attempts=1))
    workers.wait_for(lambda _: workers.ended(job))
    events = workers.of_job(job)
    assert [r.attempt for r in of_type(events, "JobRetried")] == [2]
    (completed,) = of_type(events, "JobCompleted")
    assert completed.attempt == 2


def test_a_poison_dispatch_is_parked_and_the_worker_carries_on(
    workers: Workers, stack: StackSettings, unique: str
) -> None:
    raw = Producer(stack.kafka.librdkafka())
    poison = f"\x00poison-{unique}".encode()
    raw.produce(workers.topology.tiers[Tier.FREE].name, value=poison, key=b"x")
    raw.flush(10)
    job = f"job-{unique}"
    workers.dispatch(job, synthetic(), tier=Tier.FREE)
    workers.wait_for(lambda _: "JobCompleted" in types(workers.of_job(job)))
    parked = [headers for value, headers in workers.parked() if value == poison]
    assert len(parked) == 1
    assert parked[0]["dlq.topic"] == workers.topology.tiers[Tier.FREE].name.encode()


def test_a_job_past_its_deadline_expires_instead_of_running(workers: Workers, unique: str) -> None:
    job = f"job-{unique}"
    deadline = datetime.now(UTC) - timedelta(seconds=1)
    workers.dispatch(job, synthetic(), deadline=deadline)
    workers.wait_for(lambda _: workers.ended(job))
    events = workers.of_job(job)
    assert types(events) == ["JobExpired"]
    expired = events[0]
    assert expired.data == JobExpired(job_id=job, reason=EXPIRED_REASON, deadline=deadline)
    assert expired.id == derived_event_id(expired.data)


def test_a_dispatch_seen_again_after_its_end_is_not_run_again(
    workers: Workers, unique: str
) -> None:
    job = f"job-{unique}"
    workers.dispatch(job, synthetic())
    workers.wait_for(lambda _: workers.ended(job))
    workers.dispatch(job, synthetic())  # as a processors restart may write it again
    _wait_for_duplicate(workers, job)
    assert types(workers.of_job(job)).count("JobStarted") == 1


def test_a_dispatch_repeated_right_behind_itself_runs_once(workers: Workers, unique: str) -> None:
    job = f"job-{unique}"
    workers.dispatch(job, synthetic(), wait=False)
    workers.dispatch(job, synthetic())  # read while the first copy's end is being written
    _wait_for_duplicate(workers, job)
    workers.wait_for(lambda _: workers.ended(job))
    kinds = types(workers.of_job(job))
    assert kinds.count("JobStarted") == 1
    assert kinds.count("JobCompleted") == 1


def _wait_for_duplicate(workers: Workers, job: str) -> None:
    """Until the worker has logged the job's repeated dispatch as a duplicate."""
    workers.wait_for(lambda _: f'"job_id": "{job}"' in _duplicates(workers.log()), timeout_s=60)


def _duplicates(log: str) -> str:
    return "\n".join(line for line in log.splitlines() if '"job duplicate"' in line)


def test_progress_is_throttled_to_one_event_per_interval(workers: Workers, unique: str) -> None:
    job = f"job-{unique}"
    workers.dispatch(job, synthetic(steps=40, step_ms=25))  # one second of steps
    workers.wait_for(lambda _: workers.ended(job))
    progress = of_type(workers.of_job(job), "JobProgress")
    steps = [p.step for p in progress]
    assert steps[0] == 0
    assert steps[-1] == 40
    # 40 steps in about 1 s at one per 250 ms: the start, about four, the preview, the end.
    assert len(progress) <= 8, steps


def test_a_job_past_its_time_limit_stops_and_fails(
    stack: StackSettings, tmp_path: Path, unique: str
) -> None:
    limits = {"GENSTREAM_WORKER_TIMEOUTS_S": json.dumps({"synthetic": 1})}
    with running_workers(stack, unique, tmp_path, Workload.SYNTHETIC, env=limits) as strict:
        job = f"job-{unique}"
        strict.dispatch(job, synthetic(steps=100, step_ms=100))
        strict.wait_for(lambda _: strict.ended(job))
        events = strict.of_job(job)
    (failed,) = of_type(events, "JobFailed")
    assert failed.error_code == "timeout"
    assert "JobRetried" not in types(events)
    assert max(p.step for p in of_type(events, "JobProgress")) < 30


@pytest.mark.timeout(240)
def test_a_stalled_worker_does_not_hold_up_the_others(
    stack: StackSettings, tmp_path: Path, unique: str
) -> None:
    with running_workers(stack, unique, tmp_path, Workload.SYNTHETIC, count=2) as pair:
        stalled = f"long-{unique}"
        pair.dispatch(stalled, synthetic(steps=2000, step_ms=100))
        pair.wait_for(lambda _: "JobStarted" in types(pair.of_job(stalled)))
        (busy,) = {s.worker_id for s in of_type(pair.of_job(stalled), "JobStarted")}
        short = [f"short-{unique}-{n}" for n in range(30)]
        for job in short:
            pair.dispatch(job, synthetic(steps=1, step_ms=0), wait=False)
        assert pair.producer.flush() == 0

        def finished_elsewhere(_: object) -> bool:
            return any(
                c.worker_id != busy
                for job in short
                for c in of_type(pair.of_job(job), "JobCompleted")
            )

        pair.wait_for(finished_elsewhere)
        assert not pair.ended(stalled), "the long job is still running meanwhile"
        # Freed, the stalled worker takes up the jobs that waited behind it.
        cancel = JobCancelRequested(job_id=stalled, reason="done waiting")
        pair.producer.send_and_wait(
            pair.topology.requested, Envelope.wrap(cancel, user_id="user-1", source="tests")
        )
        pair.wait_for(lambda _: all(pair.ended(job) for job in [*short, stalled]))
        assert "JobCancelled" in types(pair.of_job(stalled))
        assert all("JobCompleted" in types(pair.of_job(job)) for job in short)
