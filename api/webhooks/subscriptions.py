"""What a job's owner may subscribe its webhook to, and which events each choice sends.

``completed`` is every end (completed, failed, cancelled, expired, rejected) and is what a
job without a choice gets; ``started`` each attempt's start, ``output`` each stored preview,
``progress`` the workers' progress, at most ``PROGRESS_PER_S`` a second per job.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from contracts import (
    JobCancelled,
    JobCompleted,
    JobEvent,
    JobExpired,
    JobFailed,
    JobPreview,
    JobProgress,
    JobRejected,
    JobStarted,
)

__all__ = ["DEFAULT_EVENTS", "PROGRESS_PER_S", "WebhookEvent", "subscription_of"]


class WebhookEvent(StrEnum):
    STARTED = "started"
    OUTPUT = "output"
    PROGRESS = "progress"
    COMPLETED = "completed"


DEFAULT_EVENTS: Final = (WebhookEvent.COMPLETED,)
PROGRESS_PER_S: Final = 2.0

_OF: Final[dict[type[JobEvent], WebhookEvent]] = {
    JobStarted: WebhookEvent.STARTED,
    JobPreview: WebhookEvent.OUTPUT,
    JobProgress: WebhookEvent.PROGRESS,
    JobCompleted: WebhookEvent.COMPLETED,
    JobFailed: WebhookEvent.COMPLETED,
    JobCancelled: WebhookEvent.COMPLETED,
    JobExpired: WebhookEvent.COMPLETED,
    JobRejected: WebhookEvent.COMPLETED,
}


def subscription_of(data: object) -> WebhookEvent | None:
    """The subscription that announces ``data``; ``None`` for events never announced."""
    for event_type, subscription in _OF.items():
        if type(data) is event_type:
            return subscription
    return None
