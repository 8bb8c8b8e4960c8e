"""Event ids derived from what an event is, so that writing it again gives the same id.

A writer that may repeat an event after a crash (the processors re-reading a command, a
worker re-running a job) derives the id from the event's kind, its job and, for events a
job has once per attempt, the attempt; every reader keeps one copy per id.
"""

from __future__ import annotations

import uuid
from typing import Final

from contracts.event import Event

__all__ = ["EXPIRED_REASON", "derived_event_id"]

_NAMESPACE: Final = uuid.UUID("5b0c6a52-63c4-4c1b-9f55-3f0d7c2ad3c1")

EXPIRED_REASON: Final = "queued past its plan's deadline"
"""The one reason every writer of ``job.expired`` gives, so its copies are identical."""


def derived_event_id(data: Event, *, attempt: int | None = None) -> str:
    """The id of the only event of ``data``'s kind for its job (and attempt, when given)."""
    job_id = getattr(data, "job_id", None)
    if job_id is None:
        raise ValueError(f"{type(data).__name__} names no job")
    name = f"{data.wire_type()}/{job_id}"
    if attempt is not None:
        name = f"{name}/{attempt}"
    return str(uuid.uuid5(_NAMESPACE, name))
