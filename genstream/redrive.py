"""Dead-letter redrive: records parked on the dead-letter topic go back where they came from.

Run after the cause is fixed (a consumer upgraded to read a new event type, say). Progress is
kept as the redrive group's committed offsets, so each parked record is redriven once; a
record that fails again is parked again by its consumer.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from contracts import DEADLETTER, TopicSpec
from genstream.kafka.config import KafkaSettings
from genstream.kafka.deadletter import PARKING_PREFIX
from genstream.kafka.records import record_headers, record_position


@dataclass(frozen=True, slots=True)
class RedriveReport:
    redriven: Counter[str]
    """Records sent back, per original topic."""
    skipped: int
    """Records of other topics, left parked."""


def redrive(
    settings: KafkaSettings,
    *,
    only_topic: str | None = None,
    deadletter: TopicSpec = DEADLETTER,
    group_id: str = "genstream-redrive",
    idle_s: float = 2.0,
) -> RedriveReport:
    """Sends parked records back to their original topics until none arrive for ``idle_s``."""
    reading: dict[str, str | int | float | bool] = {
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    consumer = Consumer(settings.librdkafka(**reading))
    producer = Producer(settings.producer_config())
    consumer.subscribe([deadletter.name])
    redriven: Counter[str] = Counter()
    skipped = 0
    last_seen = time.monotonic()
    try:
        while time.monotonic() - last_seen < idle_s:
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"reading the dead-letter topic: {error.str()}")
            last_seen = time.monotonic()
            headers = record_headers(message)
            origin = next((value.decode() for name, value in headers if name == "dlq.topic"), "")
            if not origin or (only_topic is not None and origin != only_topic):
                skipped += 1
            else:
                kept: list[tuple[str, str | bytes | None]] = [
                    (name, value) for name, value in headers if not name.startswith(PARKING_PREFIX)
                ]
                producer.produce(origin, value=message.value(), key=message.key(), headers=kept)
                if producer.flush(30) != 0:
                    raise RuntimeError(f"{origin} did not acknowledge a redriven record")
                redriven[origin] += 1
            # Committed only once the record is back on its topic (or deliberately left).
            topic, partition, offset = record_position(message)
            position = TopicPartition(topic, partition, offset + 1)
            consumer.commit(offsets=[position], asynchronous=False)
    finally:
        consumer.close()
    return RedriveReport(redriven=redriven, skipped=skipped)
