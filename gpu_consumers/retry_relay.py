"""Moves retried attempts from the retry topic back to their tier topic once they are due.

Each record on the retry topic is a ``job.queued`` for the next attempt with a header that
says when it may run. A record not yet due pauses its partition (records behind it are due
no sooner than a few seconds later, as delays only grow) until it is; a due record is copied
as it is to its tier topic and committed once the copy is acknowledged. A copy written twice
after a crash carries the same event id, and the worker that meets the second one finds the
attempt already finished.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import start_http_server

from contracts import ContractError, JobQueued, decode
from genstream.kafka import KafkaSettings
from genstream.kafka.deadletter import DeadLetters
from genstream.kafka.records import record_headers
from genstream.logs import configure_logging
from genstream.signals import stop_on_signals
from genstream.tracing import configure_tracing
from gpu_consumers.runner import DUE_HEADER
from gpu_consumers.settings import WorkerSettings
from gpu_consumers.topology import WorkerTopology
from producers import EventProducer

__all__ = ["RETRY_RELAY_GROUP", "RetryRelay", "main"]

_log = logging.getLogger(__name__)

RETRY_RELAY_GROUP = "genstream-retry-relay"


class RetryRelay:
    def __init__(
        self,
        settings: KafkaSettings,
        *,
        topology: WorkerTopology,
        producer: EventProducer,
        dead_letters: DeadLetters,
        group_id: str,
    ) -> None:
        self._topology = topology
        self._producer = producer
        self._dead_letters = dead_letters
        options: dict[str, str | int | float | bool] = {
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
        }
        self._consumer = Consumer(settings.librdkafka("worker-retry", **options))
        self._waiting: dict[tuple[str, int], float] = {}
        """Paused partitions and when (epoch seconds) their first record is due."""

    def run(self, stop: threading.Event) -> None:
        self._consumer.subscribe([self._topology.retry.name], on_revoke=self._on_revoke)
        try:
            while not stop.is_set():
                self._resume_due()
                message = self._consumer.poll(0.2)
                if message is not None:
                    self._handle(message)
        finally:
            self._consumer.close()

    def _on_revoke(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._waiting.pop((tp.topic, tp.partition), None)

    def _resume_due(self) -> None:
        now = time.time()
        for key, due in list(self._waiting.items()):
            if due <= now:
                del self._waiting[key]
                self._consumer.resume([TopicPartition(*key)])

    def _handle(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                _log.warning("retry topic read error: %s", error)
            return
        headers = record_headers(message)
        try:
            envelope = decode(message.value(), headers)
            if not isinstance(envelope.data, JobQueued):
                raise ContractError(f"{envelope.type} does not belong on the retry topic")
            target = self._topology.all_tiers[envelope.data.topic]
            due_ms = int(dict(headers).get(DUE_HEADER, b"0"))
        except (ContractError, KeyError, ValueError) as exc:
            self._dead_letters(message, ContractError(f"unusable retry record: {exc}"))
            self._commit(message)
            return
        topic, partition, offset = message.topic() or "", message.partition() or 0, message.offset()
        if due_ms / 1000 > time.time():
            # Not yet: read it again from here once it is due.
            position = TopicPartition(topic, partition, offset or 0)
            self._consumer.pause([position])
            self._consumer.seek(position)
            self._waiting[(topic, partition)] = due_ms / 1000
            return
        kept = [(name, value) for name, value in headers if name != DUE_HEADER]
        self._producer.send_raw(target.name, key=message.key(), value=message.value(), headers=kept)
        self._commit(message)

    def _commit(self, message: Message) -> None:
        position = TopicPartition(
            message.topic() or "", message.partition() or 0, (message.offset() or 0) + 1
        )
        try:
            self._consumer.commit(offsets=[position], asynchronous=False)
        except KafkaException as exc:
            _log.warning("retry relay commit failed: %s", exc)


def main(argv: Sequence[str] | None = None) -> int:
    """The relay on its own (``python -m gpu_consumers.retry_relay``), with the workers'
    settings, for a deployment whose workers run without it (``worker_run_retry_relay``)."""
    del argv
    settings = WorkerSettings()
    configure_logging("retry-relay", settings.log_level)
    configure_tracing("genstream-retry-relay")
    if settings.worker_metrics_port is not None:
        start_http_server(settings.worker_metrics_port, addr="127.0.0.1")
    topology = WorkerTopology(settings.worker_workload, prefix=settings.worker_topic_prefix)
    stop = threading.Event()
    stop_on_signals(stop, log=_log, message="stopping; the record in hand is finished")
    producer = EventProducer(settings=settings.kafka)
    group_id = f"{settings.worker_topic_prefix}{RETRY_RELAY_GROUP}"
    dead_letters = DeadLetters(
        settings=settings.kafka, consumer_name=group_id, topic=topology.deadletter
    )
    try:
        RetryRelay(
            settings.kafka,
            topology=topology,
            producer=producer,
            dead_letters=dead_letters,
            group_id=group_id,
        ).run(stop)
    finally:
        producer.close()
        dead_letters.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
