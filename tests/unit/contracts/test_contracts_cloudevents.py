"""Records are CloudEvents 1.0, strictly: the official SDK's Kafka binding reads them, in
structured mode, to the attributes genstream wrote; records stored before in the older
envelope (``user_id``, ``trace``, ``ce_`` headers) still decode, to the same events."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from cloudevents.kafka import KafkaMessage, from_structured
from cloudevents.pydantic import CloudEvent as StrictCloudEvent

from contracts import REGISTRY, Envelope, decode, encode, kafka_headers

_ATTRIBUTE = re.compile(r"^[a-z0-9]{1,20}$")
"""CloudEvents 1.0: lowercase ASCII letters and digits, at most 20 recommended."""


def _message(envelope: Envelope[Any], key: bytes = b"user-1") -> KafkaMessage:
    return KafkaMessage(headers=dict(kafka_headers(envelope)), key=key, value=encode(envelope))


@pytest.mark.parametrize("wire_type", sorted(REGISTRY.models))
def test_the_sdk_reads_every_event_in_structured_mode(
    samples: dict[str, bytes], wire_type: str
) -> None:
    envelope = decode(samples[wire_type])
    message = _message(envelope)
    assert not any(name.startswith("ce_") for name in message.headers)

    event = from_structured(message, event_type=StrictCloudEvent)
    attributes = event.get_attributes()
    assert all(_ATTRIBUTE.fullmatch(name) for name in attributes), sorted(attributes)
    assert attributes["specversion"] == "1.0"
    assert attributes["id"] == envelope.id
    assert attributes["type"] == wire_type
    assert attributes["source"] == envelope.source
    assert attributes["subject"] == envelope.subject
    assert attributes["userid"] == envelope.user_id
    # The distributed-tracing extension, where the SDK and tracers look for it.
    assert attributes["traceparent"] == envelope.trace
    assert event.get_data() == json.loads(encode(envelope))["data"]


def test_every_attribute_of_the_envelope_has_a_cloudevents_name(
    samples: dict[str, bytes],
) -> None:
    for wire_type, sample in samples.items():
        names = set(json.loads(sample)) - {"data"}
        assert all(_ATTRIBUTE.fullmatch(name) for name in names), (wire_type, names)


@pytest.mark.parametrize("wire_type", sorted(REGISTRY.models))
def test_a_record_in_the_older_envelope_decodes_to_the_same_event(
    samples: dict[str, bytes], legacy_samples: dict[str, bytes], wire_type: str
) -> None:
    legacy = legacy_samples[wire_type]
    assert {"user_id", "trace"} <= set(json.loads(legacy))  # the older shape indeed
    current = decode(samples[wire_type])
    old_headers: list[tuple[str, str | bytes | None]] = [
        ("content-type", b"application/cloudevents+json"),
        ("ce_type", wire_type.encode()),
        ("ce_id", current.id.encode()),
        ("schema-version", str(current.version).encode()),
        ("traceparent", current.trace.encode()),
    ]
    assert decode(legacy) == current
    assert decode(legacy, old_headers) == current
    # Written again, it takes the current shape.
    assert json.loads(encode(decode(legacy))) == json.loads(samples[wire_type])
