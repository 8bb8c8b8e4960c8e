"""Which queued jobs the processors expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts import (
    EXPIRED_REASON,
    JobRequested,
    JobStarted,
    JobType,
    SyntheticInput,
    load_catalog,
)
from stream_processors.accounts import Account, apply, overdue

CATALOG = load_catalog()
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _account_with(*job_ids: str, requested_at: datetime) -> Account:
    account = Account(balance=100)
    for job_id in job_ids:
        request = JobRequested(
            job_id=job_id,
            job_type=JobType.SYNTHETIC,
            input=SyntheticInput(kind="synthetic", steps=1, step_ms=0),
            requested_at=requested_at,
        )
        account, _ = apply(account, request, CATALOG)
    return account


def test_only_queued_jobs_past_their_deadline_expire() -> None:
    ttl = timedelta(seconds=CATALOG.limits(Account().plan).queue_ttl_s)
    old = _account_with("old", "running", requested_at=NOW - ttl - timedelta(seconds=1))
    old, _ = apply(old, JobStarted(job_id="running", worker_id="w", attempt=1), CATALOG)
    fresh = _account_with("fresh", requested_at=NOW)

    expired = overdue(old, NOW)
    assert [e.job_id for e in expired] == ["old"]
    assert expired[0].reason == EXPIRED_REASON
    assert expired[0].deadline == old.holds["old"].deadline
    assert overdue(fresh, NOW) == []
    assert [e.job_id for e in overdue(fresh, NOW + ttl)] == ["fresh"]


def test_an_expired_job_is_not_expired_again() -> None:
    account = _account_with("old", requested_at=NOW - timedelta(days=2))
    (expiry,) = overdue(account, NOW)
    account, caused = apply(account, expiry, CATALOG)
    assert [type(e).__name__ for e in caused] == ["CreditsReleased"]
    assert overdue(account, NOW) == []
    assert account.balance == 100
