"""A consumer of typed events: decodes envelopes, hands undecodable records to a callback."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from contracts import ContractError, Envelope, decode
from genstream.kafka.config import KafkaSettings
from genstream.kafka.records import record_headers, record_position


@dataclass(frozen=True, slots=True)
class ConsumedEvent:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: dict[str, bytes]
    envelope: Envelope[Any]


@dataclass(frozen=True, slots=True)
class EventBatch:
    events: list[ConsumedEvent]
    offsets: dict[tuple[str, int], int]
    """Next offset to read per (topic, partition), covering every record in the batch."""


InvalidRecordHandler = Callable[[Message, ContractError], None]


def _raise_invalid(message: Message, error: ContractError) -> None:
    raise error


class EventConsumer:
    """Reads envelopes from topics as one member of a consumer group.

    Offsets are committed explicitly (``commit``) so that a caller commits only what it has
    finished. With ``assignments`` it reads from fixed positions instead of joining the
    group's balancing (tools and inspection). ``on_invalid`` decides what happens to a
    record that is not a valid event (default: raise); services pass a dead-letter handler.
    """

    def __init__(
        self,
        *,
        settings: KafkaSettings,
        group_id: str,
        topics: Sequence[str] = (),
        assignments: Sequence[tuple[str, int, int]] = (),
        on_invalid: InvalidRecordHandler = _raise_invalid,
        auto_offset_reset: str = "earliest",
        extra: dict[str, str | int | float | bool] | None = None,
    ) -> None:
        config = settings.librdkafka(
            **{
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": auto_offset_reset,
                "partition.assignment.strategy": "cooperative-sticky",
                **(extra or {}),
            }
        )
        self._consumer = Consumer(config)
        if assignments:
            # Reading from fixed (topic, partition, offset) positions, outside group balancing.
            self._consumer.assign([TopicPartition(t, p, o) for t, p, o in assignments])
        else:
            self._consumer.subscribe(list(topics))
        self._on_invalid = on_invalid

    def poll(self, timeout: float) -> ConsumedEvent | None:
        message = self._consumer.poll(timeout)
        return None if message is None else self._event(message)

    def poll_batch(self, *, max_records: int, timeout: float) -> EventBatch:
        """Up to ``max_records`` records: the valid events, and the offsets that cover all of
        them, invalid records included (those were handed to ``on_invalid`` already)."""
        events: list[ConsumedEvent] = []
        offsets: dict[tuple[str, int], int] = {}
        for message in self._consumer.consume(num_messages=max_records, timeout=timeout):
            event = self._event(message)
            if message.error() is None:
                topic, partition, offset = record_position(message)
                offsets[(topic, partition)] = offset + 1
            if event is not None:
                events.append(event)
        return EventBatch(events=events, offsets=offsets)

    def _event(self, message: Message) -> ConsumedEvent | None:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return None
            raise KafkaException(error)
        headers = record_headers(message)
        try:
            envelope = decode(message.value(), headers)
        except ContractError as exc:
            self._on_invalid(message, exc)
            return None
        topic, partition, offset = record_position(message)
        return ConsumedEvent(
            topic=topic,
            partition=partition,
            offset=offset,
            key=message.key(),
            headers=dict(headers),
            envelope=envelope,
        )

    def drain(
        self, *, until: Callable[[list[ConsumedEvent]], bool], timeout_s: float
    ) -> list[ConsumedEvent]:
        """Collects events until ``until(events)`` holds or the deadline passes."""
        events: list[ConsumedEvent] = []
        deadline = time.monotonic() + timeout_s
        while not until(events) and time.monotonic() < deadline:
            event = self.poll(min(0.5, max(0.0, deadline - time.monotonic())))
            if event is not None:
                events.append(event)
        return events

    def commit(self, event: ConsumedEvent) -> None:
        self.commit_offsets({(event.topic, event.partition): event.offset + 1})

    def commit_offsets(self, offsets: dict[tuple[str, int], int]) -> None:
        """Commits next-offsets per (topic, partition), synchronously."""
        if offsets:
            positions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
            self._consumer.commit(offsets=positions, asynchronous=False)

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> EventConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
