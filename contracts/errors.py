"""Exceptions raised by the contracts package.

All derive from ``ContractError`` so a consumer can route any undecodable record to the
dead-letter topic with one ``except`` clause, while tests and tools can tell the causes
apart.
"""

from __future__ import annotations

__all__ = [
    "ContractError",
    "EncodeError",
    "HeaderMismatchError",
    "InvalidEventError",
    "InvalidTraceparentError",
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
