"""Exceptions raised by the contracts package.

All derive from ``ContractError`` so a consumer can route any undecodable record to the
dead-letter topic with one ``except`` clause, while tests and tools can tell the causes
apart.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ContractError",
    "EncodeError",
    "HeaderMismatchError",
    "InvalidEventError",
    "InvalidTraceparentError",
    "JobErrorCode",
    "MalformedEventError",
    "RoutingError",
    "UnknownEventType",
    "UnsupportedVersionError",
]


class ContractError(Exception):
    """Base class for every error about the shape of an event on the wire."""


class EncodeError(ContractError):
    """An envelope could not be serialized exactly as its schema says."""


class MalformedEventError(ContractError):
    """The record is not a JSON object (bad UTF-8, bad JSON, duplicate keys, no value)."""


class UnknownEventType(ContractError):  # noqa: N818 - the public name other packages catch
    """The envelope names an event type this reader has no model for."""

    def __init__(self, wire_type: object, message: str | None = None) -> None:
        self.wire_type = wire_type
        super().__init__(message or f"unknown event type {wire_type!r}")


class UnsupportedVersionError(UnknownEventType):
    """The event type is known but this version cannot be brought to the current one."""


class InvalidEventError(ContractError):
    """The envelope or its data does not match the schema of its declared type."""


class HeaderMismatchError(ContractError):
    """Kafka headers disagree with the envelope they travel with."""


class InvalidTraceparentError(ContractError, ValueError):
    """A ``traceparent`` value that is not a valid W3C version 00 header.

    Also a ``ValueError`` so pydantic validators report it as a validation error.
    """


class RoutingError(ContractError):
    """An event was about to be written to a topic that does not carry it."""


class JobErrorCode(StrEnum):
    """The ``error_code`` a worker writes on ``job.failed`` and ``job.retried``.

    ``error_code`` itself stays a free-form string on the wire, so a reader meets codes
    added later without failing; these are the ones workers write today.
    """

    PERMANENT_ERROR = "permanent_error"
    """The input or the model cannot run the job; no retry would help."""
    TRANSIENT_ERROR = "transient_error"
    """A passing failure (the store, the device); the job is retried."""
    INTERNAL_ERROR = "internal_error"
    """An error nobody classified; the job is retried."""
    RETRIES_EXHAUSTED = "retries_exhausted"
    """The last attempt of a retried job failed too."""
    TIMEOUT = "timeout"
    """The job ran past its job type's wall-clock limit."""
    MEMORY_LIMIT = "memory_limit"
    """The job's process went past the per-job memory ceiling and was stopped."""
    OUTPUT_LIMIT = "output_limit"
    """The model produced more output (seconds of audio, frames) than the job may have."""
    CONTENT_FILTERED = "content_filtered"
    """The deployment's safety checker withheld the result."""
