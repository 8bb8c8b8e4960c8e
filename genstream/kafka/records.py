"""Helpers for records that came from, or were acknowledged by, a broker."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException, Message


def record_position(message: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a record that came from (or was acked by) a broker."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise KafkaException(KafkaError(KafkaError._BAD_MSG, "record without a position"))
    return topic, partition, offset


def record_headers(message: Message) -> list[tuple[str, bytes]]:
    """A record's headers as (name, bytes) pairs, whichever shape the client returned them in."""
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return [
        (str(name), value.encode() if isinstance(value, str) else bytes(value or b""))
        for name, value in pairs
    ]
