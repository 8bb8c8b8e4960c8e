"""The envelope, event models and enumerations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from contracts import (
    TERMINAL_STATUSES,
    CreditsPurchased,
    CreditsReserved,
    Envelope,
    JobCompleted,
    JobProgress,
    JobRetried,
    JobStarted,
    JobStatus,
    OutputFile,
    Plan,
    PlanChanged,
    Tier,
    TraceParent,
)

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _started(job_id: str = "job-1") -> JobStarted:
    return JobStarted(job_id=job_id, worker_id="worker-1", attempt=1)


def test_wrap_fills_the_envelope_from_the_data() -> None:
    before = datetime.now(UTC)
    envelope = Envelope.wrap(_started(), user_id="user-1", source="genstream/gpu-consumers")
    assert envelope.type == "genstream.job.started.v1"
    assert envelope.subject == "job-1"
    assert envelope.user_id == "user-1"
    assert envelope.specversion == "1.0"
    assert envelope.datacontenttype == "application/json"
    assert uuid.UUID(envelope.id).version == 4
    assert envelope.time.tzinfo is UTC
    assert before <= envelope.time <= datetime.now(UTC)
    TraceParent.parse(envelope.trace)
    assert envelope.version == 1


def test_wrap_uses_the_user_as_subject_of_user_events() -> None:
    data = CreditsReserved(job_id="job-1", amount=3, idempotency_key="reserve:job-1")
    envelope = Envelope.wrap(data, user_id="user-1", source="tests")
    assert envelope.subject == "user-1"
    plan = PlanChanged(plan=Plan.PRO, effective_at=datetime.now(UTC), idempotency_key="k")
    assert Envelope.wrap(plan, user_id="user-2", source="tests").subject == "user-2"


def test_wrap_keeps_given_trace_id_and_time() -> None:
    when = datetime(2025, 1, 1, tzinfo=UTC)
    envelope = Envelope.wrap(
        _started(), user_id="u", source="tests", trace=TRACE, event_id="evt-1", time=when
    )
    assert (envelope.trace, envelope.id, envelope.time) == (TRACE, "evt-1", when)


def test_fresh_envelopes_get_fresh_ids_and_traces() -> None:
    first = Envelope.wrap(_started(), user_id="u", source="tests")
    second = Envelope.wrap(_started(), user_id="u", source="tests")
    assert first.id != second.id
    assert first.trace != second.trace


def test_job_events_must_have_their_job_as_subject() -> None:
    with pytest.raises(ValidationError, match="not the job id"):
        Envelope.wrap(_started(), user_id="u", source="tests", subject="job-2")


def test_type_must_match_data() -> None:
    with pytest.raises(ValidationError, match="does not match data"):
        Envelope(
            type="genstream.job.completed.v1",
            source="tests",
            subject="job-1",
            user_id="u",
            data=_started(),
        )


def test_time_must_be_aware_and_is_stored_in_utc() -> None:
    with pytest.raises(ValidationError):
        Envelope.wrap(_started(), user_id="u", source="tests", time=datetime(2025, 1, 1))
    local = datetime(2025, 1, 1, 14, tzinfo=timezone(timedelta(hours=2)))
    envelope = Envelope.wrap(_started(), user_id="u", source="tests", time=local)
    assert envelope.time.utcoffset() == timedelta(0)
    assert envelope.time == datetime(2025, 1, 1, 12, tzinfo=UTC)


def test_envelopes_and_events_are_frozen() -> None:
    envelope = Envelope.wrap(_started(), user_id="u", source="tests")
    with pytest.raises(ValidationError):
        envelope.user_id = "someone-else"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        envelope.data.attempt = 2  # type: ignore[misc]


@pytest.mark.parametrize("bad", ["", " user", "user/1", "x" * 129])
def test_ids_are_restricted(bad: str) -> None:
    with pytest.raises(ValidationError):
        _started(job_id=bad)
    with pytest.raises(ValidationError):
        Envelope.wrap(_started(), user_id=bad, source="tests")


def test_progress_bounds() -> None:
    JobProgress(job_id="j", attempt=1, percent=100, step=5, total_steps=5)
    for change in ({"percent": 100.1}, {"percent": -1}, {"step": 6}):
        values = {"job_id": "j", "attempt": 1, "percent": 50, "step": 1, "total_steps": 5}
        with pytest.raises(ValidationError):
            JobProgress(**{**values, **change})


def test_completed_outputs() -> None:
    output = OutputFile(key="outputs/a.png", size=0, content_type="image/png")
    JobCompleted(job_id="j", attempt=1, worker_id="w", outputs=(output,), run_ms=0, usage_units=0)
    with pytest.raises(ValidationError):
        OutputFile(key="outputs/a.png", size=-1, content_type="image/png")
    with pytest.raises(ValidationError):
        OutputFile(key="outputs/a.png", size=1, content_type="png")


def test_retried_names_the_next_attempt() -> None:
    with pytest.raises(ValidationError):
        JobRetried(job_id="j", attempt=1, delay_ms=0, error_code="x", error_message="")


def test_purchase_price_needs_a_currency() -> None:
    CreditsPurchased(amount=1, payment_id="p", idempotency_key="k")
    CreditsPurchased(
        amount=1, payment_id="p", idempotency_key="k", amount_paid_minor=100, currency="USD"
    )
    with pytest.raises(ValidationError, match="go together"):
        CreditsPurchased(amount=1, payment_id="p", idempotency_key="k", amount_paid_minor=100)
    with pytest.raises(ValidationError):
        CreditsPurchased(amount=0, payment_id="p", idempotency_key="k")


def test_terminal_statuses() -> None:
    assert {s.value for s in TERMINAL_STATUSES} == {
        "completed",
        "failed",
        "cancelled",
        "rejected",
        "expired",
    }
    assert JobStatus.COMPLETED.is_terminal
    assert not JobStatus.RUNNING.is_terminal


def test_tiers_are_in_priority_order() -> None:
    assert [tier.value for tier in Tier] == ["pro", "creator", "free"]
