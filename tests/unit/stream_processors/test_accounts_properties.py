"""Property tests of the credit state machine: any sequence, duplicates included."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings, target
from hypothesis import strategies as st

from api.projection.ledger import movement
from contracts import (
    CreditsGranted,
    CreditsPurchased,
    CreditsReleased,
    CreditsReserved,
    CreditsSettled,
    Event,
    JobCancelled,
    JobCancelRequested,
    JobCompleted,
    JobExpired,
    JobFailed,
    JobRejected,
    JobRequested,
    JobStarted,
    JobType,
    Plan,
    PlanChanged,
    SyntheticInput,
    VideoGenerateInput,
    load_catalog,
)
from stream_processors.accounts import Account, apply

CATALOG = load_catalog()
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
JOBS = [f"job-{n}" for n in range(4)]


def _request(job_id: str, video_s: int | None, key: str | None) -> JobRequested:
    job_input: Any
    if video_s is None:
        job_type, job_input = (
            JobType.SYNTHETIC,
            SyntheticInput(kind="synthetic", steps=1, step_ms=0),
        )
    else:
        job_type = JobType.VIDEO_GENERATE
        job_input = VideoGenerateInput(
            kind="video.generate", prompt="p", duration_s=video_s, width=640, height=480
        )
    return JobRequested(
        job_id=job_id, job_type=job_type, input=job_input, idempotency_key=key, requested_at=NOW
    )


job_ids = st.sampled_from(JOBS)
events: st.SearchStrategy[Event] = st.one_of(
    st.builds(
        lambda amount, key: CreditsGranted(amount=amount, reason="test", idempotency_key=key),
        st.integers(1, 500),
        st.sampled_from(["g1", "g2", "g3"]),
    ),
    st.builds(
        lambda amount, key: CreditsPurchased(amount=amount, payment_id="cs", idempotency_key=key),
        st.integers(1, 50),
        st.sampled_from(["p1", "p2"]),
    ),
    st.builds(
        _request,
        job_ids,
        st.one_of(st.none(), st.integers(1, 200)),
        st.one_of(st.none(), st.sampled_from(["k1", "k2"])),
    ),
    st.builds(lambda j: JobStarted(job_id=j, worker_id="w", attempt=1), job_ids),
    st.builds(
        lambda j: JobCompleted(
            job_id=j, attempt=1, worker_id="w", outputs=(), run_ms=1, usage_units=1
        ),
        job_ids,
    ),
    st.builds(
        lambda j: JobFailed(
            job_id=j, attempt=1, error_code="boom", error_message="x", retryable=False
        ),
        job_ids,
    ),
    st.builds(lambda j: JobCancelled(job_id=j, reason="worker"), job_ids),
    st.builds(lambda j: JobExpired(job_id=j, reason="ttl", deadline=NOW), job_ids),
    st.builds(lambda j: JobCancelRequested(job_id=j, reason="user"), job_ids),
    st.builds(
        lambda p: PlanChanged(plan=p, effective_at=NOW, idempotency_key="pc"),
        st.sampled_from(list(Plan)),
    ),
)


def _with_duplicates(sequence: list[Event], repeats: list[int]) -> list[Event]:
    out = list(sequence)
    for index in repeats:
        if out:
            out.insert(index % (len(out) + 1), out[index % len(out)])
    return out


@settings(max_examples=400, deadline=None)
@given(st.lists(events, max_size=60), st.lists(st.integers(0, 1000), max_size=10))
def test_credit_invariants_hold_for_any_sequence(sequence: list[Event], repeats: list[int]) -> None:
    """Runs any interleaving of grants, purchases, requests, outcomes and cancellations."""
    account = Account()
    emitted: list[Event] = []
    first: dict[tuple[str, str], Event] = {}
    counted_keys: set[str] = set()
    added = 0
    for event in _with_duplicates(sequence, repeats):
        before, snapshot = account, account.model_dump()
        account, caused = apply(account, event, CATALOG)
        assert before.model_dump() == snapshot  # the input state is left as it was
        for data in caused:
            # Written again after a duplicate, an event must be the same event (same id downstream).
            identity = (type(data).__name__, data.job_id)  # type: ignore[attr-defined]
            assert first.setdefault(identity, data) == data
        emitted = list(first.values())
        if (
            isinstance(event, CreditsGranted | CreditsPurchased)
            and event.idempotency_key not in counted_keys
        ):
            counted_keys.add(event.idempotency_key)
            added += event.amount
        charged = sum(e.amount for e in emitted if isinstance(e, CreditsSettled))

        assert account.balance >= 0
        assert account.balance + account.held == added - charged

    reserved = Counter(e.job_id for e in emitted if isinstance(e, CreditsReserved))
    finished = Counter(e.job_id for e in emitted if isinstance(e, CreditsSettled | CreditsReleased))
    assert all(count == 1 for count in reserved.values())
    for job_id in reserved:
        # Closed exactly once, or still holding its credits.
        assert finished[job_id] == (0 if job_id in account.holds else 1)
    assert set(finished) <= set(reserved)
    assert set(account.holds) <= set(reserved)

    # A job gets exactly one decision: accepted (reserved) or rejected, never both or twice.
    rejected = Counter(e.job_id for e in emitted if isinstance(e, JobRejected))
    assert all(count == 1 for count in rejected.values())
    assert not set(rejected) & set(reserved)

    # Sequences that accept jobs are the interesting ones; make sure they are explored.
    target(float(len(reserved)), label="accepted jobs")

    # The projection's arithmetic over the emitted ledger gives the same balance.
    ledger = [
        e for e in emitted if isinstance(e, CreditsReserved | CreditsSettled | CreditsReleased)
    ]
    available = added + sum(movement(e).available for e in ledger)
    held = sum(movement(e).reserved for e in ledger)
    assert (available, held) == (account.balance, account.held)


def test_insufficient_credits_rejects_and_reserves_nothing() -> None:
    account, caused = apply(Account(balance=0), _request("j", None, None), CATALOG)
    assert [type(e) for e in caused] == [JobRejected]
    assert caused[0].reason == "insufficient_credits"  # type: ignore[attr-defined]
    assert account.holds == {}


def test_accepted_job_is_queued_on_its_plan_tier_with_a_deadline() -> None:
    account = Account(balance=10, plan=Plan.PRO)
    account, caused = apply(account, _request("j", None, None), CATALOG)
    kinds = [type(e).__name__ for e in caused]
    assert kinds == ["JobAccepted", "CreditsReserved", "JobQueued"]
    queued = caused[2]
    assert queued.topic == "jobs.synthetic.pro"  # type: ignore[attr-defined]
    assert queued.deadline == NOW.replace(hour=18)  # type: ignore[attr-defined]
    assert account.balance == 9


def test_free_plan_allows_one_video_in_a_lifetime_and_gives_it_back_on_failure() -> None:
    account = Account(balance=1000)
    account, first = apply(account, _request("v1", 10, None), CATALOG)
    assert type(first[0]).__name__ == "JobAccepted"
    account, second = apply(account, _request("v2", 10, None), CATALOG)
    assert [type(e).__name__ for e in second] == ["JobRejected"]
    assert second[0].reason == "plan_limit"  # type: ignore[attr-defined]
    failure = JobFailed(job_id="v1", attempt=1, error_code="x", error_message="x", retryable=False)
    account, _ = apply(account, failure, CATALOG)
    account, third = apply(account, _request("v3", 10, None), CATALOG)
    assert type(third[0]).__name__ == "JobAccepted"


def test_creator_monthly_minutes_are_enforced() -> None:
    account = Account(balance=100_000, plan=Plan.CREATOR)
    for n in range(15):  # 15 two-minute videos use the 30 included minutes
        account, caused = apply(account, _request(f"v{n}", 120, None), CATALOG)
        assert type(caused[0]).__name__ == "JobAccepted", caused
        done = JobCompleted(
            job_id=f"v{n}", attempt=1, worker_id="w", outputs=(), run_ms=1, usage_units=2
        )
        account, _ = apply(account, done, CATALOG)
    account, caused = apply(account, _request("over", 60, None), CATALOG)
    assert caused[0].reason == "plan_limit"  # type: ignore[attr-defined]
    assert "30 video minutes" in caused[0].detail  # type: ignore[attr-defined]


def test_cancel_of_a_queued_job_releases_it_but_a_running_one_waits_for_its_worker() -> None:
    account = Account(balance=10)
    account, _ = apply(account, _request("a", None, None), CATALOG)
    account, _ = apply(account, _request("b", None, None), CATALOG)
    account, _ = apply(account, JobStarted(job_id="b", worker_id="w", attempt=1), CATALOG)
    account, caused = apply(account, JobCancelRequested(job_id="a", reason="user"), CATALOG)
    assert [type(e).__name__ for e in caused] == ["JobCancelled", "CreditsReleased"]
    account, caused = apply(account, JobCancelRequested(job_id="b", reason="user"), CATALOG)
    assert caused == []
    assert account.balance == 9
