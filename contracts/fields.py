"""Constrained field types shared by the event models.

Bounds live here, once, so that the API, the processors and the workers agree on what
an id or a key may look like; every value that reaches S3 keys, topic keys or URLs is
restricted to characters that need no escaping there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field

from contracts.traceparent import checked_traceparent

__all__ = [
    "BlurHash",
    "ContentType",
    "ErrorCode",
    "ErrorMessage",
    "HttpUrlStr",
    "Id",
    "IdempotencyKey",
    "ObjectKey",
    "Reason",
    "TopicName",
    "Traceparent",
    "UtcDatetime",
]


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _check_traceparent(value: str) -> str:
    return checked_traceparent(value)


Id = Annotated[
    str,
    Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*$"),
]
"""Job, user, upload, worker, payment and subscription ids."""

IdempotencyKey = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[!-~]+$")]
"""Printable ASCII without spaces: it often arrives verbatim from an HTTP header."""

UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware instant, normalised to UTC so that equal instants compare equal."""

HttpUrlStr = Annotated[str, Field(max_length=2048, pattern=r"^https?://[^\s/?#]+[^\s]*$")]
"""An absolute http(s) URL kept as the exact string the user gave."""

ObjectKey = Annotated[str, Field(min_length=1, max_length=1024)]
"""A key in the object store (S3 allows up to 1024 bytes)."""

ContentType = Annotated[
    str,
    Field(
        max_length=255,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$",
    ),
]
"""A bare MIME type such as ``image/png``, without parameters."""

BlurHash = Annotated[
    str,
    Field(min_length=6, max_length=128, pattern=r"^[0-9A-Za-z#$%*+,.:;=?@\[\]^_{|}~-]+$"),
]
"""A BlurHash string (base83 alphabet)."""

ErrorCode = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_.:-]+$")]
"""A stable, machine-readable error code such as ``cuda_oom``."""

ErrorMessage = Annotated[str, Field(max_length=4000)]
"""Human-readable detail; bounded so a stack trace cannot bloat the lifecycle log."""

Reason = Annotated[str, Field(min_length=1, max_length=500)]
"""A short human-readable reason."""

TopicName = Annotated[str, Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")]
"""A Kafka topic name, with Kafka's own length and character limits."""

Traceparent = Annotated[
    str,
    Field(pattern=r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"),
    AfterValidator(_check_traceparent),
]
"""A W3C ``traceparent`` header value (version 00)."""
