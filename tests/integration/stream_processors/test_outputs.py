"""The processors' own producer against the real broker: what ``send`` hands back completes
when the brokers hold the record, and fails when they will not take it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from contracts import TopicSpec
from genstream.kafka import DeliveryError
from genstream.settings import StackSettings
from stream_processors.outputs import DirectOutputs


def _read(stack: StackSettings, spec: TopicSpec, *, count: int) -> list[Message]:
    """Every record of ``spec`` from the start, polled until ``count`` are in (30 s at most)."""
    consumer = Consumer(
        stack.kafka.librdkafka(**{"group.id": "unused", "enable.auto.commit": False})
    )
    consumer.assign([TopicPartition(spec.name, p, 0) for p in range(spec.partitions)])
    records: list[Message] = []
    deadline = time.monotonic() + 30
    try:
        while len(records) < count and time.monotonic() < deadline:
            records += [m for m in consumer.consume(1000, timeout=0.5) if m.error() is None]
    finally:
        consumer.close()
    return records


async def test_every_record_sent_is_held_by_the_brokers_once_its_send_completes(
    stack: StackSettings, make_topic: Callable[[str], TopicSpec]
) -> None:
    spec = make_topic("jobs.outcomes")
    outputs = DirectOutputs(stack.kafka, linger_ms=5)
    try:
        sent = [
            await outputs.send(
                spec.name,
                key=f"user-{n % 3}".encode(),
                value=f"record {n}".encode(),
                headers=[("type", b"test"), ("n", str(n).encode())],
            )
            for n in range(200)
        ]
        await asyncio.wait_for(asyncio.gather(*sent), timeout=30)
    finally:
        await asyncio.to_thread(outputs.close)

    records = _read(stack, spec, count=200)
    assert sorted(r.value() for r in records) == sorted(f"record {n}".encode() for n in range(200))
    by_key: dict[bytes, list[int]] = {}
    for record in records:
        headers = dict(record.headers() or [])
        assert headers["type"] == b"test"
        by_key.setdefault(record.key(), []).append(int(headers["n"]))
    # One key, one partition, in the order sent.
    assert set(by_key) == {b"user-0", b"user-1", b"user-2"}
    for numbers in by_key.values():
        assert numbers == sorted(numbers)


async def test_a_record_the_brokers_do_not_take_fails_its_send(
    stack: StackSettings, unique: str
) -> None:
    outputs = DirectOutputs(stack.kafka, linger_ms=0, extra={"message.timeout.ms": 2000})
    try:
        delivery = await outputs.send(
            f"test.{unique}.no-such-topic", key=b"k", value=b"v", headers=[]
        )
        with pytest.raises(DeliveryError):
            await asyncio.wait_for(delivery, timeout=30)
    finally:
        await asyncio.to_thread(outputs.close)


async def test_closing_delivers_what_is_still_queued(
    stack: StackSettings, make_topic: Callable[[str], TopicSpec]
) -> None:
    spec = make_topic("jobs.outcomes")
    # Held far longer than the test runs: only the close sends them.
    outputs = DirectOutputs(stack.kafka, linger_ms=60_000)
    sent = [
        await outputs.send(spec.name, key=b"user", value=str(n).encode(), headers=[])
        for n in range(20)
    ]
    await asyncio.to_thread(outputs.close)
    await asyncio.wait_for(asyncio.gather(*sent), timeout=30)
    assert len(_read(stack, spec, count=20)) == 20
