"""A job row's ``job.requested`` event: what the API emits once the row is committed, and
what a re-run of a failed job emits for its own row."""

from __future__ import annotations

from contracts import Envelope, JobRequested
from genstream.db.models import Job

__all__ = ["requested_envelope"]


def requested_envelope(job: Job, *, source: str) -> Envelope[JobRequested]:
    """The ``job.requested`` event of a job row; the same event each time it is built, so
    that a re-send after a crash is deduplicated on its id."""
    data = JobRequested.model_validate(
        {
            "job_id": job.id,
            "job_type": job.type,
            "input": job.input,
            "idempotency_key": job.idempotency_key,
            "webhook_url": job.webhook_url,
            "requested_at": job.created_at,
            "media": job.media,
            "metadata": job.metadata_,
            "end_user": job.end_user,
        }
    )
    return Envelope.wrap(
        data,
        user_id=str(job.user_id),
        source=source,
        event_id=job.event_id,
        time=job.created_at,
        trace=job.event_trace,
    )
