"""Records no consumer can handle go, as received, to the dead-letter topic with the reason."""

from __future__ import annotations

import logging

from confluent_kafka import Message, Producer

from contracts import DEADLETTER, ContractError, TopicSpec
from genstream.kafka.config import KafkaSettings
from genstream.kafka.records import record_headers

_log = logging.getLogger(__name__)


PARKING_PREFIX = "dlq."
"""Headers the dead-letter topic adds to a parked record; a redrive strips them."""


def parked_headers(
    headers: list[tuple[str, bytes]],
    *,
    topic: str,
    partition: int | None,
    offset: int | None,
    consumer: str,
    error: Exception,
) -> list[tuple[str, bytes]]:
    """A record's own headers plus where it came from and why it was refused."""
    return [
        *headers,
        (f"{PARKING_PREFIX}topic", topic.encode()),
        (f"{PARKING_PREFIX}partition", str(partition).encode()),
        (f"{PARKING_PREFIX}offset", str(offset).encode()),
        (f"{PARKING_PREFIX}consumer", consumer.encode()),
        (f"{PARKING_PREFIX}error", f"{type(error).__name__}: {error}"[:1000].encode()),
    ]


class DeadLetters:
    """An ``on_invalid`` handler for ``EventConsumer``: parks the record and moves on.

    The record's own bytes, key and headers are kept, with headers that say where it came
    from and why it was refused, so it can be inspected and redriven.
    """

    def __init__(
        self, *, settings: KafkaSettings, consumer_name: str, topic: TopicSpec = DEADLETTER
    ) -> None:
        self._topic = topic.name
        self._producer = Producer(settings.producer_config())
        self._consumer_name = consumer_name

    def __call__(self, message: Message, error: ContractError) -> None:
        headers: list[tuple[str, str | bytes | None]] = list(
            parked_headers(
                record_headers(message),
                topic=message.topic() or "",
                partition=message.partition(),
                offset=message.offset(),
                consumer=self._consumer_name,
                error=error,
            )
        )
        self._producer.produce(
            self._topic, value=message.value(), key=message.key(), headers=headers
        )
        # The caller commits past this record next; it must be safely parked first.
        if self._producer.flush(30) != 0:
            raise RuntimeError("the dead-letter topic did not acknowledge a parked record")
        _log.warning(
            "record parked on the dead-letter topic",
            extra={"topic": message.topic(), "offset": message.offset(), "error": str(error)[:300]},
        )

    def close(self) -> None:
        self._producer.flush(30)
