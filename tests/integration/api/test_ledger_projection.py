"""The ledger projection on the real stack: balances, redelivery, poison records."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from api.projection.ledger import apply_ledger_events
from api.projection.runner import ProjectionRunner
from contracts import (
    CreditsGranted,
    CreditsReleased,
    CreditsReserved,
    CreditsSettled,
    Envelope,
    TopicSpec,
)
from genstream.db import sync_engine
from genstream.db.models import CreditBalance, CreditLedgerEntry
from genstream.kafka import DeadLetters, EventConsumer
from genstream.settings import StackSettings
from producers import EventProducer


def _ledger(user_id: str, data: Any) -> Envelope[Any]:
    return Envelope.wrap(data, user_id=user_id, source="genstream/tests")


@pytest.fixture
def schema_engine(stack: StackSettings, pg_schema: tuple[Engine, str]) -> Iterator[Engine]:
    engine = sync_engine(stack.pg, schema=pg_schema[1])
    yield engine
    engine.dispose()


def _balance(engine: Engine, user_id: str) -> tuple[int, int] | None:
    with Session(engine) as session:
        row = session.get(CreditBalance, user_id)
        return None if row is None else (row.balance, row.reserved)


def test_projection_sums_the_ledger_and_ignores_redelivery(
    stack: StackSettings,
    make_topic: Callable[[str], TopicSpec],
    schema_engine: Engine,
    unique: str,
) -> None:
    ledger = make_topic("credits.ledger")
    alice, bob = f"alice-{unique}", f"bob-{unique}"
    events = [
        _ledger(alice, CreditsGranted(amount=100, reason="signup", idempotency_key=f"s:{alice}")),
        _ledger(bob, CreditsGranted(amount=40, reason="signup", idempotency_key=f"s:{bob}")),
        _ledger(alice, CreditsReserved(job_id="j1", amount=30, idempotency_key="r:j1")),
        _ledger(alice, CreditsReserved(job_id="j2", amount=10, idempotency_key="r:j2")),
        _ledger(alice, CreditsSettled(job_id="j1", amount=25, released=5, idempotency_key="s:j1")),
        _ledger(
            alice, CreditsReleased(job_id="j2", amount=10, reason="failed", idempotency_key="x:j2")
        ),
    ]
    with EventProducer(settings=stack.kafka) as producer:
        for envelope in events:
            producer.send_and_wait(ledger, envelope)
        # The same event delivered again, as a producer retry after a lost ack would.
        producer.send_and_wait(ledger, events[2])

    with EventConsumer(
        settings=stack.kafka, group_id=f"proj-{unique}", topics=[ledger.name]
    ) as consumer:
        runner = ProjectionRunner(
            engine=schema_engine, consumer=consumer, apply=apply_ledger_events
        )
        assert runner.drain(until=lambda: _entries(schema_engine) == len(events), timeout_s=30)

    assert _balance(schema_engine, alice) == (75, 0)
    assert _balance(schema_engine, bob) == (40, 0)
    with Session(schema_engine) as session:
        kinds = session.scalars(
            select(CreditLedgerEntry.kind)
            .where(CreditLedgerEntry.user_id == alice)
            .order_by(CreditLedgerEntry.seq)
        ).all()
    assert kinds == ["granted", "reserved", "reserved", "settled", "released"]

    # Applying a whole batch again (a crash before the offset commit) changes nothing.
    with schema_engine.begin() as connection:
        assert apply_ledger_events(connection, events) == 0
    assert _balance(schema_engine, alice) == (75, 0)


def test_a_batch_beyond_one_statements_parameters_is_stored_whole(
    schema_engine: Engine, unique: str
) -> None:
    # Nine parameters a row: one INSERT of 8,000 rows would pass PostgreSQL's 65,535.
    users = [f"u{index}-{unique}" for index in range(8)]
    events = [
        _ledger(user, CreditsGranted(amount=1, reason="bonus", idempotency_key=f"g{n}:{user}"))
        for n in range(1000)
        for user in users
    ]
    with schema_engine.begin() as connection:
        assert apply_ledger_events(connection, events) == len(events)
    assert [_balance(schema_engine, user) for user in users] == [(1000, 0)] * len(users)
    with schema_engine.begin() as connection:
        assert apply_ledger_events(connection, events) == 0


def _entries(engine: Engine) -> int:
    with Session(engine) as session:
        return len(session.scalars(select(CreditLedgerEntry.seq)).all())


def test_poison_records_go_to_the_dead_letter_topic(
    stack: StackSettings,
    make_topic: Callable[[str], TopicSpec],
    schema_engine: Engine,
    unique: str,
) -> None:
    ledger = make_topic("credits.ledger")
    parked = make_topic("genstream.deadletter")
    user = f"carol-{unique}"
    raw = Producer(stack.kafka.librdkafka())
    raw.produce(ledger.name, value=b"{not json", key=user.encode())
    raw.produce(ledger.name, value=b'{"type": "genstream.nope.v1"}', key=user.encode())
    raw.flush(10)
    with EventProducer(settings=stack.kafka) as producer:
        producer.send_and_wait(
            ledger,
            _ledger(user, CreditsGranted(amount=7, reason="promo", idempotency_key=f"p:{user}")),
        )

    dead_letters = DeadLetters(settings=stack.kafka, consumer_name="test-projection", topic=parked)
    with EventConsumer(
        settings=stack.kafka,
        group_id=f"proj-{unique}",
        topics=[ledger.name],
        on_invalid=dead_letters,
    ) as consumer:
        runner = ProjectionRunner(
            engine=schema_engine, consumer=consumer, apply=apply_ledger_events
        )
        assert runner.drain(until=lambda: _balance(schema_engine, user) is not None, timeout_s=30)
    dead_letters.close()
    assert _balance(schema_engine, user) == (7, 0)

    consumer = Consumer(stack.kafka.librdkafka(**{"group.id": f"dlq-{unique}"}))
    consumer.assign([TopicPartition(parked.name, p, 0) for p in range(parked.partitions)])
    records = []
    deadline = time.monotonic() + 30
    while len(records) < 2 and time.monotonic() < deadline:
        message = consumer.poll(1)
        if message is not None and message.error() is None:
            records.append(message)
    consumer.close()
    assert len(records) == 2, "the poison records did not reach the dead-letter topic"
    values = sorted(record.value() for record in records)
    assert values == [b'{"type": "genstream.nope.v1"}', b"{not json"]
    headers = dict(records[0].headers() or [])
    assert headers["dlq.topic"] == ledger.name.encode()
    assert headers["dlq.consumer"] == b"test-projection"
    assert b"Error" in headers["dlq.error"]
