"""The stream processors on the real stack: decisions, credits, routing, cancellation, expiry."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from contracts import (
    EXPIRED_REASON,
    CreditsGranted,
    Envelope,
    JobCancelRequested,
    JobCompleted,
    JobExpired,
    JobStarted,
    Plan,
    PlanChanged,
    decode,
    derived_event_id,
)
from genstream.settings import StackSettings
from stream_processors.account_table import CHUNK_ENTRIES
from stream_processors.credit_wait import WAITING_SINCE_HEADER
from tests.integration.stream_processors.harness import (
    Processors,
    distinct,
    running_processors,
    types,
)


@pytest.fixture(scope="module")
def processors(
    stack: StackSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Processors]:
    log_dir = tmp_path_factory.mktemp("processors")
    with running_processors(stack, uuid.uuid4().hex[:12], log_dir) as running:
        yield running


def test_accepted_job_is_charged_once_and_queued_on_its_tier(
    processors: Processors, unique: str
) -> None:
    user, job = f"u-{unique}", f"job-{unique}"
    processors.grant(user, 10)
    plan = PlanChanged(plan=Plan.PRO, effective_at=datetime.now(UTC), idempotency_key=f"p{unique}")
    processors.send(plan, user_id=user)
    processors.wait_for_account(user, lambda account: account["plan"] == "PRO")
    processors.request(user, job)
    processors.request(user, job)  # a redelivered command decides nothing new
    processors.wait_for(lambda _: "JobQueued" in types(processors.of_job(job)))

    decided = processors.of_job(job)
    assert types(decided).count("JobAccepted") == 1
    assert types(decided).count("CreditsReserved") == 1
    queued = [e for e in decided if type(e.data).__name__ == "JobQueued"]
    assert [e.data.topic for e in queued] == ["jobs.synthetic.pro"]
    assert queued[0].data.deadline is not None
    # Written both to the tier topic, for workers, and to the lifecycle, for the record.
    copies = {e.id for e in processors.seen() if type(e.data).__name__ == "JobQueued"}
    assert queued[0].id in copies

    processors.send(JobStarted(job_id=job, worker_id="w", attempt=1), user_id=user)
    processors.send(
        JobCompleted(job_id=job, attempt=1, worker_id="w", outputs=(), run_ms=5, usage_units=1),
        user_id=user,
    )
    processors.wait_for(lambda _: "CreditsSettled" in types(processors.of_job(job)))
    settled = [e for e in processors.of_job(job) if type(e.data).__name__ == "CreditsSettled"]
    assert [(e.data.amount, e.data.released) for e in settled] == [(1, 0)]
    assert settled[0].user_id == user


def _copies_of_request(processors: Processors, job_id: str) -> list[list[tuple[str, bytes]]]:
    """The headers of every copy of ``job_id``'s request on the requested topic."""
    spec = processors.topology.requested
    consumer = Consumer(processors.stack.kafka.librdkafka(**{"group.id": f"copies-{job_id}"}))
    try:
        ends = [
            consumer.get_watermark_offsets(TopicPartition(spec.name, p), timeout=10)[1]
            for p in range(spec.partitions)
        ]
        consumer.assign([TopicPartition(spec.name, p, 0) for p in range(spec.partitions)])
        copies, read = [], [0] * spec.partitions
        deadline = time.monotonic() + 30
        while any(read[p] < ends[p] for p in range(spec.partitions)):
            assert time.monotonic() < deadline, "the requested topic was not read to its end"
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            read[message.partition()] = message.offset() + 1
            if decode(message.value()).subject == job_id:
                copies.append(list(message.headers() or []))
        return copies
    finally:
        consumer.close()


def test_a_new_accounts_request_waits_for_its_grant_instead_of_being_rejected(
    processors: Processors, unique: str
) -> None:
    user, job = f"new-{unique}", f"job-{unique}"
    processors.request(user, job)
    # The request went round again, stamped, because the account has seen no credit yet...
    deadline = time.monotonic() + 30
    while len(copies := _copies_of_request(processors, job)) < 2:
        assert time.monotonic() < deadline, "the request did not wait for credits"
    assert any(key == WAITING_SINCE_HEADER for key, _ in copies[1])
    # ...so the grant that arrives behind it still pays for it.
    processors.send(
        CreditsGranted(amount=10, reason="signup", idempotency_key=f"signup:{user}"), user_id=user
    )
    processors.wait_for(lambda _: "JobQueued" in types(processors.of_job(job)))
    assert "JobRejected" not in types(processors.of_job(job))
    assert types(processors.of_job(job)).count("CreditsReserved") == 1


def test_insufficient_credits_are_rejected_with_the_reason(
    processors: Processors, unique: str
) -> None:
    user, job = f"poor-{unique}", f"job-{unique}"
    processors.request(user, job)
    processors.wait_for(lambda _: "JobRejected" in types(processors.of_job(job)))
    decided = processors.of_job(job)
    assert types(decided) == ["JobRejected"]
    assert decided[0].data.reason == "insufficient_credits"


def test_idempotency_key_reuse_by_another_job_is_rejected(
    processors: Processors, unique: str
) -> None:
    user = f"idem-{unique}"
    processors.grant(user, 5)
    processors.request(user, f"a-{unique}", key="same")
    processors.request(user, f"b-{unique}", key="same")
    processors.wait_for(lambda _: "JobRejected" in types(processors.of_job(f"b-{unique}")))
    assert "JobAccepted" in types(processors.of_job(f"a-{unique}"))
    rejected = processors.of_job(f"b-{unique}")[0]
    assert rejected.data.reason == "invalid_input"
    assert f"a-{unique}" in rejected.data.detail


def test_cancelling_a_queued_job_releases_its_credits(processors: Processors, unique: str) -> None:
    user, job = f"cancel-{unique}", f"job-{unique}"
    processors.grant(user, 3)
    processors.request(user, job)
    processors.wait_for(lambda _: "CreditsReserved" in types(processors.of_job(job)))
    processors.send(JobCancelRequested(job_id=job, reason="user"), user_id=user)
    processors.send(JobCancelRequested(job_id=job, reason="user"), user_id=user)
    processors.wait_for(lambda _: "CreditsReleased" in types(processors.of_job(job)))
    events = types(processors.of_job(job))
    assert events.count("JobCancelled") == 1
    assert events.count("CreditsReleased") == 1
    assert "CreditsSettled" not in events


def test_jobs_over_the_concurrency_cap_wait_their_turn_instead_of_being_rejected(
    processors: Processors, unique: str
) -> None:
    """A FREE user's third job (the plan runs two at once) is accepted, reserved and held;
    the first job's end sends it to the tier topic."""
    user = f"turns-{unique}"
    jobs = [f"job-{unique}-{n}" for n in range(3)]
    processors.grant(user, 10)
    requests = [processors.request(user, job) for job in jobs]
    processors.wait_for(lambda _: "CreditsReserved" in types(processors.of_job(jobs[2])))
    processors.wait_for(lambda _: all("JobQueued" in types(processors.of_job(j)) for j in jobs[:2]))
    assert sorted(types(processors.of_job(jobs[2]))) == ["CreditsReserved", "JobAccepted"]

    processors.send(JobStarted(job_id=jobs[0], worker_id="w", attempt=1), user_id=user)
    processors.send(
        JobCompleted(job_id=jobs[0], attempt=1, worker_id="w", outputs=(), run_ms=5, usage_units=1),
        user_id=user,
    )
    processors.wait_for(lambda _: "JobQueued" in types(processors.of_job(jobs[2])))
    queued = next(e for e in processors.of_job(jobs[2]) if type(e.data).__name__ == "JobQueued")
    assert queued.data.topic == "jobs.synthetic.free"
    assert "JobRejected" not in types(processors.of_job(jobs[2]))
    # The waiting job's dispatch continues its own request's trace, not the ending job's.
    assert queued.trace.split("-")[1] == requests[2].trace.split("-")[1]


def test_a_job_queued_past_its_deadline_expires_and_is_released(
    processors: Processors, unique: str
) -> None:
    user, job = f"expire-{unique}", f"job-{unique}"
    processors.grant(user, 3)
    processors.request(user, job, requested_at=datetime.now(UTC) - timedelta(hours=2))
    processors.wait_for(lambda _: "CreditsReleased" in types(processors.of_job(job)))
    events = processors.of_job(job)
    assert types(events).count("JobQueued") == 1
    expiries = [e for e in events if isinstance(e.data, JobExpired)]
    queued = next(e for e in events if type(e.data).__name__ == "JobQueued")
    assert [e.data.deadline for e in expiries] == [queued.data.deadline]
    assert queued.data.deadline < datetime.now(UTC)
    released = [e for e in events if type(e.data).__name__ == "CreditsReleased"]
    assert [e.data.amount for e in released] == [1]
    assert "CreditsSettled" not in types(events)
    account = processors.wait_for_account(user, lambda a: job not in a["holds"])
    assert account["balance"] == 3


def test_a_worker_expiry_and_the_processors_expiry_are_one_event(
    processors: Processors, unique: str
) -> None:
    user, job = f"expire2-{unique}", f"job-{unique}"
    processors.grant(user, 3)
    processors.request(user, job, requested_at=datetime.now(UTC) - timedelta(hours=2))
    processors.wait_for(lambda _: "JobQueued" in types(processors.of_job(job)))
    queued = next(e for e in processors.of_job(job) if type(e.data).__name__ == "JobQueued")
    expiry = JobExpired(job_id=job, reason=EXPIRED_REASON, deadline=queued.data.deadline)
    processors.send(expiry, user_id=user, event_id=derived_event_id(expiry))
    processors.wait_for(lambda _: "CreditsReleased" in types(processors.of_job(job)))
    assert types(processors.of_job(job)).count("JobExpired") == 1


def test_poison_commands_are_parked_and_processing_goes_on(
    processors: Processors, stack: StackSettings, unique: str
) -> None:
    from confluent_kafka import Producer

    raw = Producer(stack.kafka.librdkafka())
    raw.produce(processors.topology.requested.name, value=b"\x00garbage", key=b"someone")
    raw.flush(10)
    user, job = f"after-{unique}", f"job-{unique}"
    processors.grant(user, 1)
    processors.request(user, job)
    processors.wait_for(lambda _: "JobAccepted" in types(processors.of_job(job)))


@pytest.mark.timeout(400)
def test_sigkill_mid_stream_loses_no_decision_and_charges_once(
    stack: StackSettings, unique: str, tmp_path: Path
) -> None:
    jobs = [f"k{unique}-{n}" for n in range(2000)]
    users = [f"ku{unique}-{n}" for n in range(100)]
    with running_processors(stack, f"k{unique}", tmp_path) as processors:
        for user in users:
            plan = PlanChanged(plan=Plan.PRO, effective_at=datetime.now(UTC), idempotency_key=user)
            processors.send(plan, user_id=user)
            processors.wait_for_account(user, lambda account: account["plan"] == "PRO")
            processors.grant(user, 12)  # enough for 12 of each user's 20 jobs

        pace = threading.Event()

        def submit() -> None:
            # Commands keep arriving, about 500/s, while the processors die and come back.
            for index, job in enumerate(jobs):
                processors.request(users[index % len(users)], job, wait=False)
                if index % 50 == 49:
                    processors.producer.flush()
                    pace.wait(0.1)
            processors.producer.flush()

        submitter = threading.Thread(target=submit)
        submitter.start()

        def decisions(seen: list[Envelope[Any]]) -> int:
            wanted = ("JobAccepted", "JobRejected")
            return len({e.data.job_id for e in seen if type(e.data).__name__ in wanted})

        processors.wait_for(lambda seen: decisions(seen) >= 50)
        processors.kill()
        at_kill = decisions(processors.seen())
        assert at_kill < len(jobs), "the processors finished before the kill; nothing was tested"
        processors.start()
        submitter.join()
        processors.wait_for(lambda seen: decisions(seen) == len(jobs), timeout_s=240)

        by_job: dict[str, list[Envelope[Any]]] = {}
        for envelope in processors.seen():
            by_job.setdefault(getattr(envelope.data, "job_id", ""), []).append(envelope)
        accepted = 0
        for job in jobs:
            kinds = types(distinct(by_job.get(job, [])))
            assert kinds.count("JobAccepted") + kinds.count("JobRejected") == 1, (job, kinds)
            assert kinds.count("CreditsReserved") == kinds.count("JobAccepted"), (job, kinds)
            accepted += kinds.count("JobAccepted")
        # Each user could pay for 12 jobs: exactly that many were accepted, none charged twice.
        assert accepted == 12 * len(users)


@pytest.mark.timeout(300)
def test_a_long_history_sealed_in_records_of_its_own_survives_a_restart(
    stack: StackSettings, unique: str, tmp_path: Path
) -> None:
    user = f"long-{unique}"
    jobs = [f"h{unique}-{n}" for n in range(3 * CHUNK_ENTRIES)]
    with running_processors(stack, f"h{unique}", tmp_path) as processors:
        processors.grant(user, 1)
        for index, job in enumerate(jobs):
            processors.request(user, job, key=f"key-{index}", wait=False)
        processors.producer.flush()
        # One paid for, every other one rejected: each is a closed job and a key remembered.
        account = processors.wait_for_account(
            user, lambda account: len(account.get("chunks", {}).get("closed", [])) >= 2
        )
        assert len(account["closed"]) < CHUNK_ENTRIES
        processors.kill()
        processors.start()
        # The restored account still knows the oldest jobs and keys, held in sealed records.
        oldest = jobs[1]
        processors.request(user, f"again-{unique}", key="key-1")
        processors.wait_for(lambda _: bool(processors.of_job(f"again-{unique}")))
        reused = processors.of_job(f"again-{unique}")
        assert types(reused) == ["JobRejected"]
        assert oldest in reused[0].data.detail
        # A redelivered request of a job rejected long ago is not decided again, even now
        # that the account could pay for it: the next job gets the credit.
        processors.grant(user, 1)
        processors.request(user, oldest, key="key-1")
        processors.request(user, f"after-{unique}")
        processors.wait_for(lambda _: bool(processors.of_job(f"after-{unique}")))
        assert "JobAccepted" in types(processors.of_job(f"after-{unique}"))
        decided = distinct(processors.of_job(oldest))
        assert types(decided) == ["JobRejected"]
        assert decided[0].data.reason == "insufficient_credits"
