"""What a webhook says: the body built from a terminal lifecycle event.

``{"type": "job.completed", "timestamp": "…Z", "data": {"job_id": …, "status": …, …}}``,
with the outputs of a completed job, the error of a failed or rejected one, and the reason
of a cancelled or expired one. Only terminal events are announced: the job ends once, and
intermediate states are for the API's reads and event stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from contracts import (
    Envelope,
    JobCancelled,
    JobCompleted,
    JobEvent,
    JobExpired,
    JobFailed,
    JobRejected,
    JobStatus,
)

__all__ = ["ANNOUNCED", "Announcement", "announcement"]

ANNOUNCED: Final[dict[type[JobEvent], JobStatus]] = {
    JobCompleted: JobStatus.COMPLETED,
    JobFailed: JobStatus.FAILED,
    JobCancelled: JobStatus.CANCELLED,
    JobExpired: JobStatus.EXPIRED,
    JobRejected: JobStatus.REJECTED,
}
"""The lifecycle events that become webhooks, and the job status each one means."""


@dataclass(frozen=True, slots=True)
class Announcement:
    event_id: str
    event_type: str
    """``job.completed`` and the like."""
    job_id: str
    body: str
    """Compact JSON; signed and sent as these exact bytes (UTF-8) by every attempt."""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _details(data: JobEvent) -> dict[str, Any]:
    match data:
        case JobCompleted():
            return {
                "attempt": data.attempt,
                "outputs": [output.model_dump(mode="json") for output in data.outputs],
                "run_ms": data.run_ms,
                "usage_units": data.usage_units,
            }
        case JobFailed():
            return {
                "attempt": data.attempt,
                "error": {"code": data.error_code, "message": data.error_message},
            }
        case JobRejected():
            return {"error": {"code": data.reason.value, "message": data.detail}}
        case JobCancelled():
            return {"reason": data.reason}
        case JobExpired():
            return {"reason": data.reason, "deadline": _iso(data.deadline)}
    return {}


def announcement(envelope: Envelope[Any]) -> Announcement | None:
    """The webhook of ``envelope``, or ``None`` for an event that is not announced."""
    data = envelope.data
    status = ANNOUNCED.get(type(data))
    if status is None:
        return None
    assert isinstance(data, JobEvent)
    event_type = data.TYPE.removeprefix("genstream.")
    body = {
        "type": event_type,
        "timestamp": _iso(envelope.time),
        "data": {"job_id": data.job_id, "status": status.value, **_details(data)},
    }
    return Announcement(
        event_id=envelope.id,
        event_type=event_type,
        job_id=data.job_id,
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False),
    )
