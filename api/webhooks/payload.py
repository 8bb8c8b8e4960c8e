"""What a webhook says: the body built from a job event.

``{"type": "job.completed", "timestamp": "…Z", "data": {"job_id": …, "status": …, …}}``.
Ends carry the outputs of a completed job (each with a presigned ``url`` when a signer is
given, and ``urls_expire_at``), the error of a failed or rejected one, the reason of a
cancelled or expired one. A job's owner may subscribe to more (``api.webhooks.subscriptions``):
``job.started`` with the attempt, ``job.preview`` with the stored preview and its URL, and
``job.progress`` with the percent and step.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from api.webhooks.links import SignedLinks
from api.webhooks.subscriptions import WebhookEvent, subscription_of
from contracts import (
    Envelope,
    JobCancelled,
    JobCompleted,
    JobEvent,
    JobExpired,
    JobFailed,
    JobPreview,
    JobProgress,
    JobRejected,
    JobStarted,
    JobStatus,
)

__all__ = ["ANNOUNCED", "Announcement", "Links", "announcement"]

ANNOUNCED: Final[dict[type[JobEvent], JobStatus]] = {
    JobCompleted: JobStatus.COMPLETED,
    JobFailed: JobStatus.FAILED,
    JobCancelled: JobStatus.CANCELLED,
    JobExpired: JobStatus.EXPIRED,
    JobRejected: JobStatus.REJECTED,
    JobStarted: JobStatus.RUNNING,
    JobPreview: JobStatus.RUNNING,
    JobProgress: JobStatus.RUNNING,
}
"""The events that become webhooks, and the job status each one means."""

Links = Callable[[Iterable[str]], SignedLinks]
"""Signs the job's own keys among those given."""


@dataclass(frozen=True, slots=True)
class Announcement:
    event_id: str
    event_type: str
    """``job.completed`` and the like."""
    job_id: str
    subscription: WebhookEvent
    """What the owner must have subscribed to for it to be sent."""
    body: str
    """Compact JSON; signed and sent as these exact bytes (UTF-8) by every attempt."""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _signed(links: Links | None, keys: list[str]) -> SignedLinks:
    return links(keys) if links is not None and keys else SignedLinks({}, None)


def _with_expiry(details: dict[str, Any], signed: SignedLinks) -> dict[str, Any]:
    if signed.expires_at is not None:
        details["urls_expire_at"] = _iso(signed.expires_at)
    return details


def _details(data: JobEvent, links: Links | None) -> dict[str, Any]:
    match data:
        case JobCompleted():
            signed = _signed(links, [output.key for output in data.outputs])
            outputs = []
            for output in data.outputs:
                shown = output.model_dump(mode="json")
                if output.key in signed.urls:
                    shown["url"] = signed.urls[output.key]
                outputs.append(shown)
            details = {
                "attempt": data.attempt,
                "outputs": outputs,
                "run_ms": data.run_ms,
                "usage_units": data.usage_units,
            }
            return _with_expiry(details, signed)
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
        case JobStarted():
            return {"attempt": data.attempt}
        case JobPreview():
            signed = _signed(links, [data.preview_key])
            preview: dict[str, Any] = {
                "key": data.preview_key,
                "content_type": data.content_type,
                "blurhash": data.blurhash,
            }
            if data.preview_key in signed.urls:
                preview["url"] = signed.urls[data.preview_key]
            details = {"attempt": data.attempt, "step": data.step, "preview": preview}
            return _with_expiry(details, signed)
        case JobProgress():
            return {
                "attempt": data.attempt,
                "percent": data.percent,
                "step": data.step,
                "total_steps": data.total_steps,
                "message": data.message,
            }
    return {}


def announcement(envelope: Envelope[Any], links: Links | None = None) -> Announcement | None:
    """The webhook of ``envelope``, or ``None`` for an event that is never announced.

    ``links`` signs download URLs of the job's outputs and previews; without it the body
    names their keys alone.
    """
    data = envelope.data
    status = ANNOUNCED.get(type(data))
    subscription = subscription_of(data)
    if status is None or subscription is None:
        return None
    assert isinstance(data, JobEvent)
    event_type = data.TYPE.removeprefix("genstream.")
    body = {
        "type": event_type,
        "timestamp": _iso(envelope.time),
        "data": {"job_id": data.job_id, "status": status.value, **_details(data, links)},
    }
    return Announcement(
        event_id=envelope.id,
        event_type=event_type,
        job_id=data.job_id,
        subscription=subscription,
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False),
    )
