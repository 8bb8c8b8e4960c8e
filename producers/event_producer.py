"""The producer every writer outside a stream uses: typed envelopes, idempotent, acks=all."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from contracts import Envelope, TopicSpec, encode, kafka_headers, partition_key
from genstream.kafka import DeliveryError, KafkaSettings
from genstream.kafka.records import record_position


@dataclass(frozen=True, slots=True)
class Delivery:
    topic: str
    partition: int
    offset: int


def _delivery(error: KafkaError | None, message: Message) -> Delivery:
    if error is not None:
        raise DeliveryError(f"{message.topic()}: {error.str()}")
    topic, partition, offset = record_position(message)
    return Delivery(topic=topic, partition=partition, offset=offset)


class EventProducer:
    """Produces envelopes to their topic, keyed as the topic's spec says.

    Idempotence is always on (with acks=all) so that librdkafka's internal retries never write
    a record twice or out of order within a partition. A background thread serves delivery
    reports; ``send`` awaits the broker's acknowledgement of one event.
    """

    def __init__(
        self,
        *,
        settings: KafkaSettings,
        linger_ms: int = 5,
        extra: dict[str, str | int | float | bool] | None = None,
    ) -> None:
        config = settings.producer_config(
            **{"linger.ms": linger_ms, "compression.type": "lz4", **(extra or {})}
        )
        self._producer = Producer(config)
        self._stopping = threading.Event()
        self._poller = threading.Thread(
            target=self._serve_reports, name="kafka-delivery", daemon=True
        )
        self._poller.start()

    def _serve_reports(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.05)

    def _produce(self, spec: TopicSpec, envelope: Envelope[Any], on_delivery: Any) -> None:
        self._producer.produce(
            spec.name,
            value=encode(envelope),
            key=partition_key(envelope, spec),
            headers=list[tuple[str, str | bytes | None]](kafka_headers(envelope)),
            on_delivery=on_delivery,
        )

    def produce(self, spec: TopicSpec, envelope: Envelope[Any]) -> None:
        """Queues one event without waiting; ``flush`` reports whether all were acknowledged.

        For bulk writers (load generators, tools) that check delivery once at the end.
        """
        self._produce(spec, envelope, None)

    async def send(self, spec: TopicSpec, envelope: Envelope[Any]) -> Delivery:
        """Produces one event and returns once the broker has acknowledged it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Delivery] = loop.create_future()

        def settle(error: KafkaError | None, message: Message) -> None:
            try:
                result = _delivery(error, message)
            except DeliveryError as exc:
                loop.call_soon_threadsafe(_set_exception, future, exc)
            else:
                loop.call_soon_threadsafe(_set_result, future, result)

        self._produce(spec, envelope, settle)
        return await future

    def send_and_wait(
        self, spec: TopicSpec, envelope: Envelope[Any], *, timeout_s: float = 30.0
    ) -> Delivery:
        """The blocking form of ``send`` for tools and tests without an event loop."""
        done = threading.Event()
        outcome: list[Delivery | DeliveryError] = []

        def settle(error: KafkaError | None, message: Message) -> None:
            try:
                outcome.append(_delivery(error, message))
            except DeliveryError as exc:
                outcome.append(exc)
            done.set()

        self._produce(spec, envelope, settle)
        return _await_delivery(done, outcome, spec.name, timeout_s)

    def send_raw(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        timeout_s: float = 30.0,
    ) -> Delivery:
        """Writes a record as given (a parked or delayed copy) and waits for its acknowledgement."""
        done = threading.Event()
        outcome: list[Delivery | DeliveryError] = []

        def settle(error: KafkaError | None, message: Message) -> None:
            try:
                outcome.append(_delivery(error, message))
            except DeliveryError as exc:
                outcome.append(exc)
            done.set()

        self._producer.produce(
            topic,
            value=value,
            key=key,
            headers=list[tuple[str, str | bytes | None]](headers),
            on_delivery=settle,
        )
        return _await_delivery(done, outcome, topic, timeout_s)

    def flush(self, timeout_s: float = 30.0) -> int:
        """Waits for outstanding deliveries; returns how many are still unacknowledged."""
        remaining: int = self._producer.flush(timeout_s)
        return remaining

    def close(self, timeout_s: float = 30.0) -> None:
        self.flush(timeout_s)
        self._stopping.set()
        self._poller.join()

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _set_result(future: asyncio.Future[Delivery], result: Delivery) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[Delivery], error: DeliveryError) -> None:
    if not future.done():
        future.set_exception(error)


def _await_delivery(
    done: threading.Event, outcome: list[Delivery | DeliveryError], topic: str, timeout_s: float
) -> Delivery:
    if not done.wait(timeout_s):
        raise DeliveryError(f"{topic}: no acknowledgement within {timeout_s:.0f}s")
    result = outcome[0]
    if isinstance(result, DeliveryError):
        raise result
    return result
