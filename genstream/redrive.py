"""Dead-letter redrive: records parked on the dead-letter topic go back where they came from.

Run after the cause is fixed (a consumer upgraded to read a new event type, say). Progress is
kept as the redrive group's committed offsets, so each parked record is redriven once; a
record that fails again is parked again by its consumer.

A failed job's dispatch is not sent back: the job has ended, and a worker would skip it as a
duplicate. It is re-run instead when ``rerun`` is given (``genstream.rerun``), and otherwise
left parked, where ``genstream deadletter rerun`` finds it whenever it is asked.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from contracts import DEADLETTER, TopicSpec
from genstream.kafka.config import KafkaSettings
from genstream.kafka.parked import ParkedRecord
from genstream.kafka.records import record_position
from genstream.rerun import Rerun


@dataclass(frozen=True, slots=True)
class RedriveReport:
    redriven: Counter[str]
    """Records sent back, per original topic."""
    skipped: int
    """Records of other topics, left parked."""
    failed_jobs: int = 0
    """Failed jobs' dispatches met, re-run or (without ``rerun``) left parked."""
    reruns: list[Rerun] = field(default_factory=list)
    """What re-running each failed job did, with ``rerun``."""


def redrive(
    settings: KafkaSettings,
    *,
    only_topic: str | None = None,
    deadletter: TopicSpec = DEADLETTER,
    group_id: str = "genstream-redrive",
    idle_s: float = 2.0,
    rerun: Callable[[str], Rerun] | None = None,
) -> RedriveReport:
    """Sends parked records back to their original topics until none arrive for ``idle_s``;
    ``rerun`` (given a failed job's id) re-runs the failed jobs met on the way."""
    reading: dict[str, str | int | float | bool] = {
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    consumer = Consumer(settings.librdkafka(**reading))
    producer = Producer(settings.producer_config())
    consumer.subscribe([deadletter.name])
    redriven: Counter[str] = Counter()
    skipped = failed_jobs = 0
    reruns: list[Rerun] = []
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
            parked = ParkedRecord.of(message)
            if not parked.origin or (only_topic is not None and parked.origin != only_topic):
                skipped += 1
            elif parked.failed_job:
                failed_jobs += 1
                if rerun is not None and parked.key is not None:
                    reruns.append(rerun(parked.key.decode(errors="replace")))
            else:
                producer.produce(
                    parked.origin,
                    value=parked.value,
                    key=parked.key,
                    headers=list[tuple[str, str | bytes | None]](parked.own_headers),
                )
                if producer.flush(30) != 0:
                    raise RuntimeError(f"{parked.origin} did not acknowledge a redriven record")
                redriven[parked.origin] += 1
            # Committed only once the record is back on its topic (or deliberately left).
            topic, partition, offset = record_position(message)
            position = TopicPartition(topic, partition, offset + 1)
            consumer.commit(offsets=[position], asynchronous=False)
    finally:
        consumer.close()
    return RedriveReport(redriven=redriven, skipped=skipped, failed_jobs=failed_jobs, reruns=reruns)
