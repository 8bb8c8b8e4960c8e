"""The status precedence of the lifecycle fold: order, copies and races do not matter."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.projection.job_state import StoredEvent, fold
from contracts import (
    Event,
    JobAccepted,
    JobCancelled,
    JobCompleted,
    JobExpired,
    JobFailed,
    JobPreview,
    JobQueued,
    JobRejected,
    JobRetried,
    JobStarted,
    JobStatus,
    JobType,
    OutputFile,
    RejectReason,
    SyntheticInput,
    Tier,
)

JOB = "job_1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ev(event_id: str, seconds: float, data: Event) -> StoredEvent:
    return StoredEvent(event_id, at(seconds), data)


ACCEPTED = ev(
    "a", 1, JobAccepted(job_id=JOB, job_type=JobType.SYNTHETIC, tier=Tier.PRO, credits_reserved=5)
)
QUEUED = ev(
    "q",
    2,
    JobQueued(
        job_id=JOB,
        job_type=JobType.SYNTHETIC,
        tier=Tier.PRO,
        input=SyntheticInput(),
        attempt=1,
        topic="jobs.synthetic.pro",
    ),
)
STARTED_1 = ev("s1", 3, JobStarted(job_id=JOB, worker_id="w1", attempt=1))
PREVIEW_1 = ev(
    "p1",
    4,
    JobPreview(
        job_id=JOB, attempt=1, step=2, preview_key="outputs/u/job_1/p", content_type="image/png"
    ),
)
RETRIED_2 = ev(
    "r2",
    5,
    JobRetried(job_id=JOB, attempt=2, delay_ms=10, error_code="oom", error_message="out of memory"),
)
STARTED_2 = ev("s2", 6, JobStarted(job_id=JOB, worker_id="w2", attempt=2))
OUTPUT = OutputFile(key="outputs/u/job_1/out.png", size=10, content_type="image/png")
COMPLETED_2 = ev(
    "c2",
    7,
    JobCompleted(
        job_id=JOB, attempt=2, worker_id="w2", outputs=(OUTPUT,), run_ms=900, usage_units=1
    ),
)
CANCELLED = ev("x", 8, JobCancelled(job_id=JOB, reason="user"))


def test_a_job_that_runs_to_completion() -> None:
    state = fold([ACCEPTED, QUEUED, STARTED_1, PREVIEW_1, RETRIED_2, STARTED_2, COMPLETED_2])
    row = state.columns()
    assert state.status is JobStatus.COMPLETED
    assert (row["tier"], row["credits_reserved"], row["attempt"], row["worker_id"]) == (
        "pro",
        5,
        2,
        "w2",
    )
    assert (row["started_at"], row["finished_at"], row["run_ms"]) == (at(6), at(7), 900)
    assert row["queued_at"] == at(5), "the current attempt was queued by its retry"
    assert row["outputs"] == [OUTPUT.model_dump(mode="json")]
    assert row["preview"]["key"] == "outputs/u/job_1/p"
    assert (row["error_code"], row["error"]) == (None, None)


def test_each_phase_shows_its_status() -> None:
    assert fold([]).status is JobStatus.PENDING
    assert fold([ACCEPTED]).status is JobStatus.ACCEPTED
    assert fold([ACCEPTED, QUEUED]).status is JobStatus.QUEUED
    running = fold([ACCEPTED, QUEUED, STARTED_1]).columns()
    assert (running["status"], running["worker_id"], running["started_at"]) == (
        "running",
        "w1",
        at(3),
    )
    retrying = fold([ACCEPTED, QUEUED, STARTED_1, RETRIED_2]).columns()
    assert (retrying["status"], retrying["attempt"], retrying["worker_id"]) == ("queued", 2, None)
    assert (retrying["error_code"], retrying["started_at"]) == ("oom", None)


def test_the_first_terminal_event_is_final() -> None:
    late_start = ev("s3", 9, JobStarted(job_id=JOB, worker_id="w3", attempt=3))
    state = fold([ACCEPTED, QUEUED, STARTED_2, COMPLETED_2, CANCELLED, late_start, RETRIED_2])
    row = state.columns()
    assert state.status is JobStatus.COMPLETED
    assert (row["worker_id"], row["attempt"], row["finished_at"]) == ("w2", 2, at(7))
    cancelled = fold([ACCEPTED, CANCELLED, QUEUED, late_start, COMPLETED_2]).columns()
    assert cancelled["status"] == "cancelled"
    assert (cancelled["error_code"], cancelled["error"]) == ("cancelled", "user")
    assert (cancelled["worker_id"], cancelled["attempt"]) == (None, 1), (
        "a start after the end changes nothing"
    )
    # Facts that do not depend on order still arrive after the end.
    assert (cancelled["tier"], cancelled["queued_at"]) == ("pro", at(2))


def test_an_end_keeps_the_start_that_came_before_it() -> None:
    # The worker's start reached the lifecycle after the processors' cancellation.
    row = fold([ACCEPTED, QUEUED, CANCELLED, STARTED_1]).columns()
    assert (row["status"], row["worker_id"], row["started_at"]) == ("cancelled", "w1", at(3))


@pytest.mark.parametrize(
    ("event", "status", "code"),
    [
        (
            JobFailed(job_id=JOB, attempt=1, error_code="bad", error_message="m", retryable=False),
            JobStatus.FAILED,
            "bad",
        ),
        (JobExpired(job_id=JOB, reason="late", deadline=T0), JobStatus.EXPIRED, "expired"),
        (
            JobRejected(job_id=JOB, reason=RejectReason.INSUFFICIENT_CREDITS, detail="d"),
            JobStatus.REJECTED,
            "insufficient_credits",
        ),
    ],
)
def test_every_terminal_status_records_why(event: Event, status: JobStatus, code: str) -> None:
    state = fold([ACCEPTED, ev("t", 9, event), STARTED_1])
    row = state.columns()
    assert (state.status, row["error_code"], row["finished_at"]) == (status, code, at(9))


def test_a_job_started_twice_keeps_the_later_start_whatever_the_order() -> None:
    again = ev("s1b", 3.5, JobStarted(job_id=JOB, worker_id="w1b", attempt=1))
    for order in ([STARTED_1, again], [again, STARTED_1]):
        row = fold([ACCEPTED, QUEUED, *order]).columns()
        assert (row["worker_id"], row["started_at"]) == ("w1b", at(3.5))


def test_a_completed_job_keeps_its_own_workers_start() -> None:
    rerun = ev("s2b", 6.5, JobStarted(job_id=JOB, worker_id="w2b", attempt=2))
    row = fold([ACCEPTED, QUEUED, RETRIED_2, STARTED_2, rerun, COMPLETED_2]).columns()
    assert (row["worker_id"], row["started_at"]) == ("w2", at(6))


def test_a_worker_event_before_the_queue_event_does_not_move_back() -> None:
    row = fold([ACCEPTED, STARTED_1, QUEUED]).columns()
    assert (row["status"], row["queued_at"], row["worker_id"]) == ("running", at(2), "w1")


RUNNING_HISTORY = [ACCEPTED, QUEUED, STARTED_1, PREVIEW_1, RETRIED_2, STARTED_2]


def test_non_terminal_history_folds_the_same_in_any_order() -> None:
    expected = fold(RUNNING_HISTORY).columns()
    for order in itertools.permutations(RUNNING_HISTORY):
        assert fold(order).columns() == expected, [event.event_id for event in order]


@given(st.permutations([*RUNNING_HISTORY, COMPLETED_2, CANCELLED]))
def test_with_one_end_any_order_folds_the_same(order: list[StoredEvent]) -> None:
    # Only the choice between two ends depends on order: the first one stored wins.
    first_end = next(e for e in order if e in (COMPLETED_2, CANCELLED))
    history = [e for e in order if e is first_end or e not in (COMPLETED_2, CANCELLED)]
    canonical = [e for e in [*RUNNING_HISTORY, COMPLETED_2, CANCELLED] if e in history]
    assert fold(order).columns() == fold(canonical).columns()
    assert fold(order).status is (
        JobStatus.COMPLETED if first_end is COMPLETED_2 else JobStatus.CANCELLED
    )
