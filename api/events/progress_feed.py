"""Progress events for this API process: the progress topic, read from its end in a thread.

Every API process sees all progress, so the consumer stays outside any group (a group would
split the partitions between processes) and commits nothing: what it missed while down is
not worth replaying, since progress is live only.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from contracts import ContractError, Envelope, JobProgress, decode
from genstream.kafka import KafkaSettings
from genstream.kafka.records import record_headers

__all__ = ["ProgressFeed"]

_log = logging.getLogger(__name__)

_BATCH: Final = 500
_POLL_S: Final = 0.2
_METADATA_TIMEOUT_S: Final = 10.0
_RETRY_S: Final = 5.0


class ProgressFeed:
    """Hands batches of progress envelopes to ``deliver``, called from the feed's thread."""

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        topic: str,
        deliver: Callable[[Sequence[Envelope[Any]]], object],
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        self._deliver = deliver
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None

    def start(self) -> None:
        """Positions the consumer at the topic's current end, then reads in the background.

        Blocks until positioned, so a stream opened after ``start`` sees all progress
        written after it opened. When the brokers cannot be reached, streams go on with the
        lifecycle alone while the feed keeps trying in the background.
        """
        self._consumer = self._connect()
        self._thread = threading.Thread(target=self._run, name="progress-feed", daemon=True)
        self._thread.start()

    def _connect(self) -> Consumer | None:
        options: dict[str, str | int | float | bool] = {
            # Never joins the group nor commits; librdkafka just wants a name.
            "group.id": f"genstream-api-progress-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "latest",
        }
        consumer = Consumer(self._kafka.librdkafka(**options))
        try:
            consumer.assign(self._ends(consumer))
        except KafkaException as error:
            _log.error("progress feed not reading yet: %s", error)
            consumer.close()
            return None
        return consumer

    def _ends(self, consumer: Consumer) -> list[TopicPartition]:
        metadata = consumer.list_topics(self._topic, timeout=_METADATA_TIMEOUT_S)
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise KafkaException(f"topic {self._topic!r} is not available")
        positions = []
        for partition in sorted(topic.partitions):
            _, high = consumer.get_watermark_offsets(
                TopicPartition(self._topic, partition), timeout=_METADATA_TIMEOUT_S
            )
            positions.append(TopicPartition(self._topic, partition, high))
        return positions

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._consumer is None:
                if not self._stop.wait(_RETRY_S):
                    self._consumer = self._connect()
                continue
            try:
                # poll returns as soon as a record arrives, where consume would wait for a full
                # batch or its whole timeout: that wait would be every event's latency. What
                # else has arrived by then follows in the same batch.
                first = self._consumer.poll(_POLL_S)
                if first is None:
                    continue
                messages = [first, *self._consumer.consume(num_messages=_BATCH - 1, timeout=0)]
            except KafkaException as error:
                _log.warning("progress feed read error: %s", error)
                continue
            batch = [envelope for m in messages if (envelope := self._decode(m)) is not None]
            if batch:
                self._deliver(batch)

    def _decode(self, message: Message) -> Envelope[Any] | None:
        if message.error() is not None:
            return None
        try:
            envelope = decode(message.value(), record_headers(message))
        except ContractError as error:
            # Nothing is stored from this topic, so a bad record is only skipped.
            _log.warning("progress record skipped: %s", error)
            return None
        return envelope if isinstance(envelope.data, JobProgress) else None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
