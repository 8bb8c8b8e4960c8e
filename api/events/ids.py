"""Event ids of the streams, and the ``text/event-stream`` framing.

An id says how far a client got: ``<seq>`` after the lifecycle event stored at ``seq``, and
``<seq>.<n>`` after the ``n``-th progress event sent since then. Resuming from either replays
every lifecycle event after ``seq``; progress is live only, so ``n`` is informative.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["StreamPosition", "comment", "frame", "parse_event_id"]

_ID: Final = re.compile(r"^(0|[1-9][0-9]{0,17})(?:\.([1-9][0-9]{0,17}))?$")


@dataclass(frozen=True, slots=True)
class StreamPosition:
    seq: int
    """The last lifecycle event delivered (its ``job_events.seq``); 0 before any."""
    progress: int = 0
    """Progress events delivered since that lifecycle event."""

    def event_id(self) -> str:
        return str(self.seq) if self.progress == 0 else f"{self.seq}.{self.progress}"


def parse_event_id(value: str) -> StreamPosition:
    """The position an id of these streams names; ``ValueError`` for anything else."""
    match = _ID.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{value[:40]!r} is not an event id of this stream")
    return StreamPosition(int(match[1]), int(match[2] or 0))


def frame(*, event: str, data: dict[str, Any], event_id: str) -> bytes:
    """One event. Compact JSON has no line breaks, so ``data`` is a single line."""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"id: {event_id}\nevent: {event}\ndata: {body}\n\n".encode()


def comment(text: str) -> bytes:
    """A comment line, which clients ignore: heartbeats and the opening line."""
    return f": {text}\n\n".encode()
