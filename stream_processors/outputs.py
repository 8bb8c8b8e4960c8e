"""Where the processors' agents write what their inputs cause.

Under ``at_least_once`` (the default) the records go through a librdkafka producer of their
own (``DirectOutputs``), which keeps several produce requests in flight to a broker, where
Faust's producer (aiokafka) waits for each request's answer before it sends the next, so
under load every output queued behind one round trip. Faust keeps its own producer for the
accounts table's changelog.

Under ``exactly_once`` the records must be part of the transaction that commits their
inputs, which only Faust's producer takes part in, so they go through the app's topics
(``FaustOutputs``).

Either way ``send`` hands back an awaitable that completes once the brokers hold the record,
which is what ``stream_processors.acks`` waits for before an input is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Awaitable
from typing import Any, Protocol

import faust
from confluent_kafka import KafkaError, Message, Producer

from genstream.kafka import DeliveryError, KafkaSettings

RawHeaders = list[tuple[str, bytes]]

_FULL_QUEUE_PAUSE_S = 0.005
"""How long a send waits for room when librdkafka's queue is full, before trying again."""


class Outputs(Protocol):
    async def send(
        self, topic: str, *, key: bytes | None, value: bytes, headers: RawHeaders
    ) -> Awaitable[Any]:
        """Queues a record; the awaitable returned completes once the brokers hold it."""
        ...

    def close(self) -> None:
        """Waits (a bounded time) for what is queued and releases the client."""
        ...


class DirectOutputs:
    """A librdkafka producer (idempotent, acks=all) whose acknowledgements reach the loop.

    A thread serves delivery reports, and hands the reports of each of its polls to the event
    loop in one call: one wake-up of the loop for many records, not one for each.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        linger_ms: int,
        extra: dict[str, str | int | float | bool] | None = None,
    ) -> None:
        self._producer = Producer(
            settings.producer_config("processors-out", **{"linger.ms": linger_ms, **(extra or {})})
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reports: list[tuple[asyncio.Future[None], KafkaError | None]] = []
        self._stopping = threading.Event()
        self._poller = threading.Thread(
            target=self._serve_reports, name="processors-delivery", daemon=True
        )
        self._poller.start()

    async def send(
        self, topic: str, *, key: bytes | None, value: bytes, headers: RawHeaders
    ) -> Awaitable[Any]:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = self._loop.create_future()
        report = functools.partial(self._report, delivered)
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    headers=list[tuple[str, str | bytes | None]](headers),
                    on_delivery=report,
                )
                return delivered
            except BufferError:
                # librdkafka's queue is full: the brokers are behind, so this input waits.
                await asyncio.sleep(_FULL_QUEUE_PAUSE_S)

    def _report(
        self, delivered: asyncio.Future[None], error: KafkaError | None, _message: Message
    ) -> None:
        self._reports.append((delivered, error))

    def _serve_reports(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.05)
            self._hand_over()

    def _hand_over(self) -> None:
        # Reports are only added during poll() or flush(), both called from this thread or
        # after it has stopped, so swapping the list here races with nothing.
        if not self._reports or self._loop is None:
            return
        reports, self._reports = self._reports, []
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for these
            self._loop.call_soon_threadsafe(_settle, reports)

    def close(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        self._poller.join()
        self._producer.flush(timeout_s)
        self._hand_over()


class FaustOutputs:
    """The app's own topics, so that the records join Faust's transactions."""

    def __init__(self, app: faust.App) -> None:
        self._app = app
        self._topics: dict[str, faust.TopicT] = {}

    async def send(
        self, topic: str, *, key: bytes | None, value: bytes, headers: RawHeaders
    ) -> Awaitable[Any]:
        channel = self._topics.get(topic)
        if channel is None:
            channel = self._topics[topic] = raw_topic(self._app, topic)
        return await channel.send(key=key, value=value, headers=headers)

    def close(self) -> None:
        """Faust flushes its producer when the app stops."""


def raw_topic(app: faust.App, *names: str) -> faust.TopicT:
    """The app's topic (or topics, read as one) of records taken and given as bytes."""
    return app.topic(
        *names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


def _settle(reports: list[tuple[asyncio.Future[None], KafkaError | None]]) -> None:
    for delivered, error in reports:
        if delivered.done():
            continue
        if error is None:
            delivered.set_result(None)
        else:
            delivered.set_exception(DeliveryError(error.str()))
