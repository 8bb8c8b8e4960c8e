"""Bytes on Kafka ↔ envelopes, in CloudEvents structured JSON mode, and that mode alone.

The body is the whole envelope. The headers are ``content-type:
application/cloudevents+json`` and three that repeat attributes of the body under their
own names, ``type``, ``id`` and ``traceparent``, so that routers and tracers need not parse
the body. None is a ``ce_`` header, which would make a CloudEvents SDK read the record in
binary mode; and a reader that turns headers into attributes, as the SDK's structured Kafka
binding does, gets the attributes the body has. Records written before carry ``ce_type``,
``ce_id`` and ``schema-version`` headers, which are still read and checked.

A reader refuses anything it cannot decode exactly (unknown type, bad JSON, wrong shape,
headers that disagree with the body) with a ``ContractError``, so that the record goes to a
dead-letter topic instead of being half-understood.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any, Final

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from contracts.envelope import Envelope
from contracts.errors import (
    ContractError,
    EncodeError,
    HeaderMismatchError,
    InvalidEventError,
    MalformedEventError,
    UnknownEventType,
)
from contracts.event import Event, split_wire_type
from contracts.registry import REGISTRY, Registry

__all__ = [
    "CONTENT_TYPE",
    "HEADER_CONTENT_TYPE",
    "HEADER_ID",
    "HEADER_SCHEMA_VERSION",
    "HEADER_TRACEPARENT",
    "HEADER_TYPE",
    "Headers",
    "decode",
    "encode",
    "header_id",
    "header_type",
    "kafka_headers",
]

CONTENT_TYPE: Final = "application/cloudevents+json"
HEADER_CONTENT_TYPE: Final = "content-type"
HEADER_TYPE: Final = "type"
HEADER_ID: Final = "id"
HEADER_TRACEPARENT: Final = "traceparent"
LEGACY_HEADER_TYPE: Final = "ce_type"
LEGACY_HEADER_ID: Final = "ce_id"
HEADER_SCHEMA_VERSION: Final = "schema-version"
"""Written with ``ce_type`` and ``ce_id`` before; checked where present, no longer written."""
_TYPE_HEADERS: Final = frozenset({HEADER_TYPE, LEGACY_HEADER_TYPE})
_ID_HEADERS: Final = frozenset({HEADER_ID, LEGACY_HEADER_ID})

Headers = Iterable[tuple[str, str | bytes | None]]
"""Kafka record headers as confluent-kafka returns them (``Message.headers()``)."""


def encode(envelope: Envelope[Any], *, registry: Registry = REGISTRY) -> bytes:
    """Compact UTF-8 JSON of the whole envelope.

    Raises ``UnknownEventType`` unless the data's model is the one the registry reads
    that type with, and ``EncodeError`` when a value cannot be serialized as its schema
    says.
    """
    if registry.models.get(envelope.type) is not type(envelope.data):
        raise UnknownEventType(
            envelope.type,
            f"{type(envelope.data).__name__} is not the registered model of {envelope.type!r}",
        )
    try:
        return envelope.model_dump_json(warnings="error", by_alias=True).encode("utf-8")
    except (PydanticSerializationError, ValueError, TypeError) as error:
        raise EncodeError(f"cannot serialize {envelope.type!r} event {envelope.id}") from error


def kafka_headers(envelope: Envelope[Any]) -> list[tuple[str, bytes]]:
    """The headers to write with ``encode(envelope)``."""
    return [
        (HEADER_CONTENT_TYPE, CONTENT_TYPE.encode()),
        (HEADER_TYPE, envelope.type.encode()),
        (HEADER_ID, envelope.id.encode()),
        (HEADER_TRACEPARENT, envelope.trace.encode()),
    ]


def decode(
    value: bytes | None,
    headers: Headers | None = None,
    *,
    registry: Registry = REGISTRY,
) -> Envelope[Event]:
    """Parse a record value into an envelope whose ``data`` is the concrete model.

    Older versions are upcast to the current one, so the result's ``type`` is always
    current. When ``headers`` are given, those that are present must agree with the body.

    Raises ``MalformedEventError``, ``UnknownEventType`` (or its ``UnsupportedVersionError``),
    ``HeaderMismatchError`` or ``InvalidEventError``, all ``ContractError``.
    """
    if value is None:
        raise MalformedEventError("record has no value")
    if headers is not None:
        headers = list(headers)
        envelope = _decode_canonical(value, headers, registry)
        if envelope is not None:
            return envelope
    return _decode_checked(value, headers, registry)


def _decode_checked(value: bytes, headers: Headers | None, registry: Registry) -> Envelope[Event]:
    """``decode`` of any record: the body parsed and checked first, then validated."""
    body = _parse_object(value)
    wire_type = body.get("type")
    if not isinstance(wire_type, str):
        raise InvalidEventError("envelope has no string 'type'")
    if headers is not None:
        parts = split_wire_type(wire_type)
        version = parts[1] if parts else None
        _check_headers(headers, wire_type=wire_type, version=version, body=body)
    model = registry.model_for(wire_type)
    if wire_type != model.wire_type():
        value = json.dumps(_upcast(body, wire_type, model, registry)).encode()
    try:
        # Strict JSON validation: a string where the schema says integer is a producer
        # bug to surface, not to coerce.
        return _envelope_of(model).model_validate_json(value, strict=True)
    except ValidationError as error:
        raise InvalidEventError(f"{wire_type!r} does not match its schema: {error}") from error


def _decode_canonical(
    value: bytes, headers: list[tuple[str, str | bytes | None]], registry: Registry
) -> Envelope[Event] | None:
    """The envelope of a record written by ``encode``, parsed once; ``None`` for any other,
    which ``decode`` then reads the long way, with the errors it gives.

    The type comes from the headers. A value that is byte for byte the encoding of the
    envelope it validates to is canonical JSON: no duplicate keys (the encoder writes
    each field once), no constants, nothing to upcast, and the body's ``id``, ``type``
    and ``trace`` are the envelope's, so the checks ``decode`` makes on the parsed body
    give the same answers here.
    """
    wire_type = header_type(headers)
    model = registry.models.get(wire_type) if wire_type is not None else None
    if model is None:
        return None
    try:
        envelope = _envelope_of(model).model_validate_json(value, strict=True)
    except (ContractError, ValidationError, ValueError):
        return None
    if envelope.model_dump_json(by_alias=True).encode() != value:
        return None
    _check_headers(headers, wire_type=envelope.type, version=model.VERSION, body=envelope)
    return envelope


def header_type(headers: Headers) -> str | None:
    """The event type a record's ``type`` (or earlier ``ce_type``) header names, any case,
    or ``None``."""
    return _header(headers, _TYPE_HEADERS)


def header_id(headers: Headers) -> str | None:
    """The event id a record's ``id`` (or earlier ``ce_id``) header names, or ``None``."""
    return _header(headers, _ID_HEADERS)


def _header(headers: Headers, names: frozenset[str]) -> str | None:
    raw = next((value for name, value in headers if name.lower() in names), None)
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


@functools.cache
def _envelope_of(model: type[Event]) -> type[Envelope[Event]]:
    # Parametrising a generic model is a class lookup pydantic redoes on every call.
    return Envelope[model]  # type: ignore[valid-type]


def _parse_object(value: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(
            value.decode("utf-8"),
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_no_constant,
        )
    except (UnicodeDecodeError, ValueError) as error:
        raise MalformedEventError(f"record value is not UTF-8 JSON: {error}") from error
    except RecursionError as error:
        raise MalformedEventError("record value is nested too deeply") from error
    if not isinstance(parsed, dict):
        raise MalformedEventError(f"record value is a JSON {type(parsed).__name__}, not an object")
    return parsed


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = item
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _upcast(
    body: dict[str, Any], wire_type: str, model: type[Event], registry: Registry
) -> dict[str, Any]:
    parts = split_wire_type(wire_type)
    data = body.get("data")
    if parts is None or not isinstance(data, dict):
        raise InvalidEventError(f"{wire_type!r} envelope has no object 'data'")
    name, version = parts
    return {**body, "type": model.wire_type(), "data": registry.upcast(name, version, data)}


def _check_headers(
    headers: Headers,
    *,
    wire_type: str,
    version: int | None,
    body: dict[str, Any] | Envelope[Event],
) -> None:
    """Refuses headers that disagree with the body's ``id``, ``trace`` and type."""
    event_id: Any
    trace: Any
    if isinstance(body, Envelope):
        event_id, trace = body.id, body.trace
    else:
        event_id, trace = body.get("id"), body.get("traceparent", body.get("trace"))
    expected: dict[str, Any] = {
        HEADER_CONTENT_TYPE: CONTENT_TYPE,
        HEADER_TYPE: wire_type,
        LEGACY_HEADER_TYPE: wire_type,
        HEADER_ID: event_id,
        LEGACY_HEADER_ID: event_id,
        HEADER_SCHEMA_VERSION: None if version is None else str(version),
        HEADER_TRACEPARENT: trace,
    }
    for raw_name, raw_value in headers:
        name = raw_name.lower()
        if name not in expected:
            continue
        value = _header_text(name, raw_value)
        if name == HEADER_CONTENT_TYPE:
            value = value.split(";", 1)[0].strip().lower()
        if value != expected[name]:
            raise HeaderMismatchError(
                f"header {name!r} is {value!r} but the envelope says {expected[name]!r}"
            )


def _header_text(name: str, value: str | bytes | None) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        raise HeaderMismatchError(f"header {name!r} has no value")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as error:
        raise HeaderMismatchError(f"header {name!r} is not UTF-8") from error
