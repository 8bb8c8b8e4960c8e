"""A new account's request waits for its grant a bounded while; others are decided at once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts import (
    CreditsGranted,
    JobRejected,
    JobRequested,
    JobType,
    SyntheticInput,
    load_catalog,
)
from stream_processors.accounts import Account, CreditsOwedError, apply
from stream_processors.credit_wait import WAITING_SINCE_HEADER, CreditWait

CATALOG = load_catalog()
REQUEST = JobRequested(
    job_id="job-1",
    job_type=JobType.SYNTHETIC,
    input=SyntheticInput(kind="synthetic", steps=1, step_ms=0),
    requested_at=datetime(2026, 11, 21, tzinfo=UTC),
)


def test_an_account_without_any_credit_yet_is_owed_its_grant() -> None:
    with pytest.raises(CreditsOwedError):
        apply(Account(), REQUEST, CATALOG, may_wait=True)


def test_without_leave_to_wait_the_request_is_rejected() -> None:
    _, caused = apply(Account(), REQUEST, CATALOG)
    assert [type(e) for e in caused] == [JobRejected]


def test_an_account_that_has_seen_credit_is_decided_at_once() -> None:
    spent = Account(balance=0, ledger_keys={"signup": True})
    _, caused = apply(spent, REQUEST, CATALOG, may_wait=True)
    assert [type(e) for e in caused] == [JobRejected]
    assert caused[0].reason == "insufficient_credits"


def test_the_grant_behind_the_request_pays_for_it() -> None:
    granted, _ = apply(
        Account(), CreditsGranted(amount=10, reason="signup", idempotency_key="g"), CATALOG
    )
    after, caused = apply(granted, REQUEST, CATALOG, may_wait=True)
    assert "job-1" in after.holds
    assert "JobQueued" in [type(e).__name__ for e in caused]


def test_a_request_waits_until_its_time_or_rounds_run_out() -> None:
    wait = CreditWait(limit_s=5.0, max_rounds=3)
    headers: list[tuple[str, bytes]] = [("traceparent", b"t")]
    assert wait.may_wait(headers, 100.0)
    first = wait.again(headers, 100.0)
    assert first == [("traceparent", b"t"), (WAITING_SINCE_HEADER, b"100000:1")]
    assert wait.may_wait(first, 104.9)
    assert not wait.may_wait(first, 105.0)
    # The clock of later rounds does not move the start.
    third = wait.again(wait.again(first, 101.0), 102.0)
    assert dict(third)[WAITING_SINCE_HEADER] == b"100000:3"
    assert not wait.may_wait(third, 102.0)


@pytest.mark.parametrize("stamp", [b"", b"x:1", b"100", b"1:y"])
def test_a_malformed_stamp_does_not_wait(stamp: bytes) -> None:
    assert not CreditWait().may_wait([(WAITING_SINCE_HEADER, stamp)], 0.0)


def test_a_zero_limit_never_waits() -> None:
    assert not CreditWait(limit_s=0).may_wait([], 0.0)
