"""Webhook bodies built from terminal lifecycle events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from api.webhooks.payload import announcement
from contracts import (
    Envelope,
    JobCompleted,
    JobEvent,
    JobExpired,
    JobFailed,
    JobQueued,
    JobRejected,
    JobStarted,
    OutputFile,
    RejectReason,
    SyntheticInput,
    Tier,
)

WHEN = datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)


def _wrap(data: JobEvent) -> Envelope[Any]:
    return Envelope.wrap(data, user_id="user-1", source="genstream/tests", time=WHEN)


def test_completed_job_carries_its_outputs() -> None:
    envelope = _wrap(
        JobCompleted(
            job_id="job_1",
            attempt=2,
            worker_id="w-1",
            outputs=(OutputFile(key="outputs/u/job_1/a.png", size=10, content_type="image/png"),),
            run_ms=1500,
            usage_units=1,
        )
    )
    found = announcement(envelope)
    assert found is not None
    assert (found.event_id, found.event_type, found.job_id) == (
        envelope.id,
        "job.completed",
        "job_1",
    )
    body = json.loads(found.body)
    assert body["type"] == "job.completed"
    assert body["timestamp"] == "2026-03-04T05:06:07.891000Z"
    assert body["data"]["job_id"] == "job_1"
    assert body["data"]["status"] == "completed"
    assert body["data"]["outputs"][0]["key"] == "outputs/u/job_1/a.png"
    # Internal details stay inside.
    assert "worker_id" not in body["data"]
    assert " " not in found.body


def test_failed_and_rejected_jobs_carry_their_error() -> None:
    failed = announcement(
        _wrap(
            JobFailed(
                job_id="job_2",
                attempt=3,
                error_code="retries_exhausted",
                error_message="boom",
                retryable=False,
            )
        )
    )
    assert failed is not None
    assert json.loads(failed.body)["data"]["error"] == {
        "code": "retries_exhausted",
        "message": "boom",
    }
    rejected = announcement(
        _wrap(JobRejected(job_id="job_3", reason=RejectReason.INSUFFICIENT_CREDITS, detail="no"))
    )
    assert rejected is not None
    data = json.loads(rejected.body)["data"]
    assert data["status"] == "rejected"
    assert data["error"]["code"] == "insufficient_credits"


def test_expired_job_names_its_deadline() -> None:
    found = announcement(_wrap(JobExpired(job_id="job_4", reason="late", deadline=WHEN)))
    assert found is not None
    assert json.loads(found.body)["data"]["deadline"] == "2026-03-04T05:06:07.891000Z"


def test_starts_are_announced_for_those_subscribed_and_queueing_never() -> None:
    found = announcement(_wrap(JobStarted(job_id="job_5", worker_id="w", attempt=1)))
    assert found is not None
    assert (found.event_type, found.subscription) == ("job.started", "started")
    assert json.loads(found.body)["data"] == {"job_id": "job_5", "status": "running", "attempt": 1}
    queued = JobQueued(
        job_id="job_5",
        job_type="synthetic",
        tier=Tier.FREE,
        input=SyntheticInput(),
        attempt=1,
        topic="jobs.synthetic.free",
    )
    assert announcement(_wrap(queued)) is None
