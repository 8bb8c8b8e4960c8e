"""Jobs over a plan's concurrency wait their turn; a user's backlog enters the queue a few
jobs at a time, so the users of a tier take turns."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import (
    Event,
    JobCancelRequested,
    JobCompleted,
    JobQueued,
    JobRequested,
    JobStarted,
    JobType,
    Plan,
    SyntheticInput,
    load_catalog,
)
from stream_processors.accounts import Account, apply, overdue

CATALOG = load_catalog()
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
FREE = CATALOG.limits(Plan.FREE)
PRO = CATALOG.limits(Plan.PRO)


def _request(job_id: str, at: datetime = NOW) -> JobRequested:
    return JobRequested(
        job_id=job_id,
        job_type=JobType.SYNTHETIC,
        input=SyntheticInput(kind="synthetic", steps=1, step_ms=0),
        requested_at=at,
    )


def _started(job_id: str) -> JobStarted:
    return JobStarted(job_id=job_id, worker_id="w", attempt=1)


def _completed(job_id: str) -> JobCompleted:
    return JobCompleted(
        job_id=job_id, attempt=1, worker_id="w", outputs=(), run_ms=1, usage_units=1
    )


def _queued(caused: list[Event]) -> list[str]:
    return [e.job_id for e in caused if isinstance(e, JobQueued)]


def _kinds(caused: list[Event]) -> list[str]:
    return [type(e).__name__ for e in caused]


def _free_user_with(jobs: int) -> tuple[Account, list[list[Event]]]:
    account, answers = Account(balance=100), []
    for n in range(jobs):
        account, caused = apply(account, _request(f"j{n}", NOW + timedelta(seconds=n)), CATALOG)
        answers.append(caused)
    return account, answers


def test_a_job_over_the_concurrency_cap_is_accepted_and_waits() -> None:
    account, answers = _free_user_with(FREE.max_concurrent_jobs + 1)
    waiting = f"j{FREE.max_concurrent_jobs}"
    assert _kinds(answers[-1]) == ["JobAccepted", "CreditsReserved"]
    assert account.holds[waiting].status == "waiting"
    assert account.balance == 100 - (FREE.max_concurrent_jobs + 1)  # its credits are reserved


def test_a_waiting_job_goes_to_the_queue_when_a_job_ends_keeping_its_deadline() -> None:
    account, _ = _free_user_with(FREE.max_concurrent_jobs + 1)
    waiting = f"j{FREE.max_concurrent_jobs}"
    account, _ = apply(account, _started("j0"), CATALOG)
    account, caused = apply(account, _completed("j0"), CATALOG)
    assert _kinds(caused) == ["CreditsSettled", "JobQueued"]
    queued = caused[-1]
    assert isinstance(queued, JobQueued)
    assert queued.job_id == waiting
    requested_at = NOW + timedelta(seconds=FREE.max_concurrent_jobs)
    assert queued.deadline == requested_at + timedelta(seconds=FREE.queue_ttl_s)
    assert account.holds[waiting].status == "queued"


def test_the_end_seen_again_sends_the_same_turn_again_and_no_other() -> None:
    account, _ = _free_user_with(FREE.max_concurrent_jobs + 2)
    account, _ = apply(account, _started("j0"), CATALOG)
    account, first = apply(account, _completed("j0"), CATALOG)
    account, again = apply(account, _completed("j0"), CATALOG)
    assert again == first
    assert [job for job, hold in account.holds.items() if hold.status == "waiting"] == ["j3"]


def test_waiting_jobs_take_their_turns_in_the_order_they_came() -> None:
    account, _ = _free_user_with(FREE.max_concurrent_jobs + 3)
    order = []
    for n in range(3):
        account, _ = apply(account, _started(f"j{n}"), CATALOG)
        account, caused = apply(account, _completed(f"j{n}"), CATALOG)
        order += _queued(caused)
    assert order == ["j2", "j3", "j4"]


def test_past_the_waiting_bound_a_job_is_refused_as_queue_full() -> None:
    account = Account(balance=1000)
    for n in range(FREE.max_concurrent_jobs + FREE.max_waiting_jobs):
        account, caused = apply(account, _request(f"j{n}"), CATALOG)
        assert _kinds(caused)[0] == "JobAccepted"
    account, caused = apply(account, _request("over"), CATALOG)
    assert _kinds(caused) == ["JobRejected"]
    assert caused[0].reason == "queue_full"  # type: ignore[attr-defined]
    assert "over" not in account.holds


def test_a_waiting_job_can_be_cancelled_and_expires_at_its_deadline() -> None:
    account, _ = _free_user_with(FREE.max_concurrent_jobs + 2)
    account, caused = apply(account, JobCancelRequested(job_id="j2", reason="user"), CATALOG)
    assert _kinds(caused) == ["JobCancelled", "CreditsReleased"]
    late = NOW + timedelta(seconds=FREE.queue_ttl_s + 10)
    assert "j3" in [expiry.job_id for expiry in overdue(account, late)]


def test_a_backlog_enters_the_queue_a_window_at_a_time() -> None:
    account = Account(balance=10_000, plan=Plan.PRO)
    queued: list[str] = []
    for n in range(50):
        account, caused = apply(account, _request(f"j{n}"), CATALOG)
        queued += _queued(caused)
    assert len(queued) == PRO.dispatch_window
    account, caused = apply(account, _started(queued[0]), CATALOG)
    assert _queued(caused) == [f"j{PRO.dispatch_window}"]  # a start frees a place in the queue


def _run_tier(backlogs: dict[str, int], late_user: str, window_plan: Plan) -> list[str]:
    """One worker on one tier topic: every user's jobs requested up front (the late user's
    one after all the others'), the worker starting and finishing jobs in topic order."""
    accounts = {user: Account(balance=1_000_000, plan=window_plan) for user in backlogs}
    accounts[late_user] = Account(balance=1_000_000, plan=window_plan)
    topic: deque[tuple[str, str]] = deque()

    def feed(user: str, event: Event) -> None:
        accounts[user], caused = apply(accounts[user], event, CATALOG)
        topic.extend((user, job_id) for job_id in _queued(caused))

    for user, count in backlogs.items():
        for n in range(count):
            feed(user, _request(f"{user}-{n}"))
    feed(late_user, _request(f"{late_user}-late"))
    started = []
    while topic:
        user, job_id = topic.popleft()
        started.append(job_id)
        feed(user, _started(job_id))
        feed(user, _completed(job_id))
    return started


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 120), min_size=1, max_size=4
    ),
    st.sampled_from([Plan.FREE, Plan.CREATOR, Plan.PRO]),
)
def test_a_late_job_waits_behind_a_window_of_each_backlog_and_nobody_starves(
    backlogs: dict[str, int], plan: Plan
) -> None:
    limits = CATALOG.limits(plan)
    window = limits.dispatch_window
    started = _run_tier(backlogs, "late", plan)
    # Nobody starves: every accepted job starts, once (past the waiting bound jobs are refused).
    accepted = min(limits.max_concurrent_jobs, window) + limits.max_waiting_jobs
    assert sorted(started) == sorted(
        [f"{u}-{n}" for u, count in backlogs.items() for n in range(min(count, accepted))]
        + ["late-late"]
    )
    # The late job waits behind at most a window of each other user's jobs.
    assert started.index("late-late") <= window * len(backlogs)
    # Users alternate: no user starts more than a window of jobs in a row while another has
    # a job in the queue.
    owners = [job.split("-")[0] for job in started]
    remaining = dict.fromkeys(backlogs, 0) | {"late": 0}
    for owner in owners:
        remaining[owner] += 1
    run, last = 0, ""
    for owner in owners:
        remaining[owner] -= 1
        run = run + 1 if owner == last else 1
        last = owner
        others_waiting = any(left for user, left in remaining.items() if user != owner)
        assert run <= window or not others_waiting


def test_a_thousand_job_backlog_holds_another_user_up_by_one_window() -> None:
    started = _run_tier({"a": 1000}, "b", Plan.PRO)
    assert started.index("b-late") <= PRO.dispatch_window
