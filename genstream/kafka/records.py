"""Helpers for records that came from, or were acknowledged by, a broker."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message


def record_position(message: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a record that came from (or was acked by) a broker."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise KafkaException(KafkaError(KafkaError._BAD_MSG, "record without a position"))
    return topic, partition, offset


def normalize_headers(raw: Any) -> list[tuple[str, bytes]]:
    """Headers as (name, bytes) pairs, whichever shape a client returned them in (a list of
    pairs or a mapping, values as bytes, str or None)."""
    pairs = raw.items() if isinstance(raw, dict) else (raw or [])
    return [
        (str(name), value.encode() if isinstance(value, str) else bytes(value or b""))
        for name, value in pairs
    ]


def record_headers(message: Message) -> list[tuple[str, bytes]]:
    """A consumed record's headers as (name, bytes) pairs."""
    return normalize_headers(message.headers())
