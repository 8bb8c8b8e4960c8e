"""The dead-letter topic, read: parked records with where they came from and why.

``read_parked`` reads a time range of the topic outside any consumer group (nothing is
committed), so listing and showing never move a redrive's progress. ``ParkedFilter`` picks
records by origin topic, reason, job and position, the way an operator narrows a list.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from confluent_kafka import Consumer, Message, TopicPartition

from contracts.codec import header_id, header_type
from genstream.kafka.config import KafkaSettings
from genstream.kafka.deadletter import PARKING_PREFIX
from genstream.kafka.records import record_headers

__all__ = [
    "FAILED_JOB",
    "ParkedFilter",
    "ParkedRecord",
    "dead_letter_reason",
    "read_parked",
]

FAILED_JOB: Final = "JobFailure"
"""The error type a worker parks a job's dispatch under when the job has failed for good."""

_READER_GROUP: Final = "genstream-redrive"
"""Named, never joined: positions are assigned and nothing is committed. It is the group
whose principal may read the dead-letter topic on the secured stack."""


def dead_letter_reason(error: str) -> str:
    """The reason a record was parked, from its ``dlq.error`` header (``Type: message``).

    A failed job is parked as ``JobFailure: <error code>: <message>``: its error code is the
    reason. Anything else is named by the exception type that refused it.
    """
    kind, _, rest = error.partition(": ")
    if kind == FAILED_JOB and rest:
        return rest.partition(": ")[0] or kind
    return kind or "unknown"


@dataclass(frozen=True, slots=True)
class ParkedRecord:
    """One record on the dead-letter topic, its bytes as they were received."""

    partition: int
    offset: int
    parked_at: datetime
    origin: str
    """The topic it came from (``dlq.topic``): where a redrive sends it."""
    consumer: str
    """The consumer group that refused it."""
    error: str
    """``Type: message`` of what refused it."""
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def position(self) -> str:
        """``partition:offset``, the handle ``genstream deadletter show`` takes."""
        return f"{self.partition}:{self.offset}"

    @property
    def reason(self) -> str:
        return dead_letter_reason(self.error)

    @property
    def failed_job(self) -> bool:
        """A job's dispatch parked because the job failed; it is re-run, not sent back."""
        return self.error.startswith(f"{FAILED_JOB}: ")

    @property
    def event_type(self) -> str | None:
        return header_type(self.headers)

    @property
    def event_id(self) -> str | None:
        return header_id(self.headers)

    @property
    def own_headers(self) -> list[tuple[str, bytes]]:
        """The record's headers without those parking added."""
        return [
            (name, value) for name, value in self.headers if not name.startswith(PARKING_PREFIX)
        ]

    @classmethod
    def of(cls, message: Message) -> ParkedRecord:
        headers = tuple(record_headers(message))
        named = dict(headers)
        _, stamp = message.timestamp()
        return cls(
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            parked_at=datetime.fromtimestamp(max(0, stamp) / 1000, UTC),
            origin=named.get(f"{PARKING_PREFIX}topic", b"").decode(errors="replace"),
            consumer=named.get(f"{PARKING_PREFIX}consumer", b"").decode(errors="replace"),
            error=named.get(f"{PARKING_PREFIX}error", b"").decode(errors="replace"),
            key=message.key(),
            value=message.value(),
            headers=headers,
        )


@dataclass(frozen=True, slots=True)
class ParkedFilter:
    """Which parked records an operator asked for; every field given must match."""

    topic: str | None = None
    """The origin topic, exactly."""
    reason: str | None = None
    """The reason (``dead_letter_reason``), exactly, or any part of the error text."""
    job_id: str | None = None
    """The record's key, which is the job id for every job topic."""
    position: str | None = None
    """``partition:offset``."""

    def matches(self, record: ParkedRecord) -> bool:
        if self.topic is not None and record.origin != self.topic:
            return False
        if self.reason is not None and not (
            record.reason == self.reason or self.reason in record.error
        ):
            return False
        if self.job_id is not None and record.key != self.job_id.encode():
            return False
        return self.position is None or record.position == self.position


def read_parked(
    settings: KafkaSettings,
    topic: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    timeout_s: float = 10.0,
    at_most: int | None = None,
) -> Iterator[ParkedRecord]:
    """The records parked on ``topic`` from ``since`` (the start) to ``until`` (now),
    partition by partition in offset order, up to the end the topic had when asked.

    Raises ``KafkaException`` when the brokers cannot be reached, ``TimeoutError`` when
    records stop arriving for ``timeout_s`` before the end.
    """
    consumer = Consumer(
        settings.librdkafka(
            "deadletter", **{"group.id": _READER_GROUP, "enable.auto.commit": "false"}
        )
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return
        since_ms = int(since.timestamp() * 1000) if since is not None else 0
        until_ms = int(until.timestamp() * 1000) if until is not None else None
        asked = [TopicPartition(topic, p, since_ms) for p in sorted(metadata.partitions)]
        starts = consumer.offsets_for_times(asked, timeout=timeout_s) if since else asked
        ends: dict[int, int] = {}
        froms: list[TopicPartition] = []
        for tp in starts:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, tp.partition), timeout=timeout_s
            )
            start = low if since is None else tp.offset
            if 0 <= start < high:
                ends[tp.partition] = high
                froms.append(TopicPartition(topic, tp.partition, start))
        yielded = 0
        consumer.assign(froms)
        next_offset = {tp.partition: tp.offset for tp in froms}
        while ends:
            # Never asked for more than are left: consume() waits out its timeout for a batch
            # it cannot fill.
            left = sum(ends[p] - next_offset[p] for p in ends)
            batch = consumer.consume(max(1, min(500, left)), timeout=timeout_s)
            for message in batch:
                partition, offset = message.partition(), message.offset()
                if message.error() is not None or partition is None or offset is None:
                    continue
                if partition not in ends:
                    continue
                next_offset[partition] = offset + 1
                stamp = message.timestamp()[1]
                if until_ms is not None and stamp >= until_ms:
                    ends.pop(partition)
                    continue
                yield ParkedRecord.of(message)
                yielded += 1
                if at_most is not None and yielded >= at_most:
                    return
            # A transaction's commit marker takes an offset no record has: the consumer's
            # position, not the last record, says a partition was read to its end.
            for tp in consumer.position([TopicPartition(topic, p) for p in list(ends)]):
                if tp.offset >= 0:
                    next_offset[tp.partition] = max(next_offset[tp.partition], tp.offset)
            done = [p for p in ends if next_offset[p] >= ends[p]]
            for partition in done:
                ends.pop(partition)
            if not batch and not done:
                raise TimeoutError(f"{topic}: no records within {timeout_s} s of its end")
    finally:
        consumer.close()
