"""W3C Trace Context ``traceparent`` values.

Every envelope carries one so that a job's path through the API, the stream processors and
the GPU workers can be followed as one trace, whichever tracing backend reads it.
Only version ``00`` is produced or accepted: a header we cannot interpret is better
refused than silently forwarded as if it were ours.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from contracts.errors import InvalidTraceparentError

__all__ = [
    "TraceParent",
    "checked_traceparent",
    "child_traceparent",
    "new_traceparent",
    "parse_traceparent",
]

_VERSION = "00"
_PATTERN = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_PARENT_ID = re.compile(r"^[0-9a-f]{16}$")
_SAMPLED = 0x01


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A parsed ``traceparent``: trace id, parent (span) id and trace flags."""

    trace_id: str
    parent_id: str
    flags: int = _SAMPLED

    def __post_init__(self) -> None:
        if not _TRACE_ID.fullmatch(self.trace_id) or self.trace_id == "0" * 32:
            raise InvalidTraceparentError(f"invalid trace id {self.trace_id!r}")
        if not _PARENT_ID.fullmatch(self.parent_id) or self.parent_id == "0" * 16:
            raise InvalidTraceparentError(f"invalid parent id {self.parent_id!r}")
        if not 0 <= self.flags <= 0xFF:
            raise InvalidTraceparentError(f"invalid trace flags {self.flags!r}")

    @classmethod
    def parse(cls, value: str) -> TraceParent:
        """Parse a ``traceparent`` string; raise ``InvalidTraceparentError`` if malformed."""
        match = _PATTERN.fullmatch(value)
        if match is None:
            raise InvalidTraceparentError(f"malformed traceparent {value!r}")
        trace_id, parent_id, flags = match.groups()
        return cls(trace_id=trace_id, parent_id=parent_id, flags=int(flags, 16))

    @classmethod
    def new(cls, *, sampled: bool = True) -> TraceParent:
        """Start a new trace with random ids."""
        return cls(
            trace_id=_random_hex(16),
            parent_id=_random_hex(8),
            flags=_SAMPLED if sampled else 0,
        )

    @property
    def sampled(self) -> bool:
        return bool(self.flags & _SAMPLED)

    def child(self) -> TraceParent:
        """A new span in the same trace, for the event this one caused."""
        return TraceParent(trace_id=self.trace_id, parent_id=_random_hex(8), flags=self.flags)

    def format(self) -> str:
        return f"{_VERSION}-{self.trace_id}-{self.parent_id}-{self.flags:02x}"

    def __str__(self) -> str:
        return self.format()


def _random_hex(num_bytes: int) -> str:
    # All-zero ids are invalid per the spec; the odds are negligible but not zero.
    while True:
        value = secrets.token_hex(num_bytes)
        if value.strip("0"):
            return value


def checked_traceparent(value: str) -> str:
    """``value`` if it is a valid version-00 ``traceparent`` (already in canonical form);
    raises ``InvalidTraceparentError`` otherwise. Cheaper than a parse on every event."""
    match = _PATTERN.fullmatch(value)
    if match is None:
        raise InvalidTraceparentError(f"malformed traceparent {value!r}")
    trace_id, parent_id, _ = match.groups()
    if trace_id == "0" * 32:
        raise InvalidTraceparentError(f"invalid trace id {trace_id!r}")
    if parent_id == "0" * 16:
        raise InvalidTraceparentError(f"invalid parent id {parent_id!r}")
    return value


def parse_traceparent(value: str) -> TraceParent:
    return TraceParent.parse(value)


def new_traceparent() -> str:
    """A fresh ``traceparent`` string for an event that starts a trace."""
    return TraceParent.new().format()


def child_traceparent(value: str) -> str:
    """The ``traceparent`` for an event caused by the event that carried ``value``."""
    return TraceParent.parse(value).child().format()
