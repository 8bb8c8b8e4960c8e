"""The status snapshot and the system's gauges against the real broker and read model."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine, text

from contracts import TopicSpec
from contracts.catalog import load_catalog
from genstream.db import sync_engine
from genstream.ops_metrics import SystemCollector
from genstream.settings import StackSettings
from genstream.system_status import StatusScope, read_kafka, read_model_facts


def _produce(
    stack: StackSettings, topic: str, records: list[tuple[int, list[tuple[str, bytes]]]]
) -> None:
    producer = Producer(stack.kafka.producer_config())
    for partition, headers in records:
        producer.produce(topic, value=b"{}", partition=partition, headers=headers)
    assert producer.flush(30) == 0


def _commit(stack: StackSettings, group: str, offsets: dict[tuple[str, int], int]) -> None:
    consumer = Consumer(stack.kafka.librdkafka(**{"group.id": group}))
    try:
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
        )
    finally:
        consumer.close()


def _parked(reason: str, source: str) -> list[tuple[str, bytes]]:
    return [("dlq.error", reason.encode()), ("dlq.topic", source.encode())]


def test_lag_is_the_log_end_minus_the_committed_offset_and_dead_letters_count_by_reason(
    stack: StackSettings,
    unique: str,
    make_topic: Callable[[str], TopicSpec],
    pg_schema: tuple[Engine, str],
) -> None:
    tier = make_topic("jobs.image.free")
    dead = make_topic("genstream.deadletter")
    _produce(stack, tier.name, [(0, [])] * 5 + [(1, [])] * 2)
    group = f"test-status-{unique}"
    # Partition 0: 3 of 5 taken; partition 1: all of 2; partition 2: never committed.
    _commit(stack, group, {(tier.name, 0): 3, (tier.name, 1): 2})
    _produce(
        stack,
        dead.name,
        [
            (0, _parked("JobFailure: timeout: ran past 60 s", "jobs.image.free")),
            (1, _parked("JobFailure: timeout: ran past 60 s", "jobs.image.free")),
            (2, _parked("UndecodableEventError: not JSON", "jobs.lifecycle")),
        ],
    )
    scope = StatusScope(topic_prefix=f"test.{unique}.", groups=(group, f"test-none-{unique}"))

    facts = read_kafka(stack.kafka, scope)

    measured, nobody = facts.groups
    assert [(p.partition, p.committed, p.log_end, p.lag) for p in measured.partitions] == [
        (0, 3, 5, 2),
        (1, 2, 2, 0),
    ]
    assert (measured.lag, measured.members, measured.state) == (2, 0, "EMPTY")
    assert (nobody.lag, nobody.members, nobody.partitions) == (0, 0, [])
    # The image workers' group never read this tier: all of it waits.
    assert facts.tier_depths[tier.name] == 7
    assert {(d.reason, d.topic, d.count) for d in facts.dead_letters} == {
        ("timeout", "jobs.image.free", 2),
        ("UndecodableEventError", "jobs.lifecycle", 1),
    }

    engine = sync_engine(stack.pg, schema=pg_schema[1])
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO credit_balances (user_id, balance, reserved)"
                    " VALUES ('a', 5, 3), ('b', 9, 0)"
                )
            )
        with engine.connect() as connection:
            model = read_model_facts(connection)
        assert (model.reserved_credits, model.accounts_with_reservations) == (3, 1)

        registry = CollectorRegistry()
        registry.register(
            SystemCollector(kafka=stack.kafka, engine=engine, catalog=load_catalog(), scope=scope)
        )
        scraped = generate_latest(registry).decode()
    finally:
        engine.dispose()
    assert (
        f'genstream_consumer_group_lag{{group="{group}",partition="0",topic="{tier.name}"}} 2.0'
        in scraped
    )
    assert f'genstream_consumer_group_members{{group="{group}"}} 0.0' in scraped
    assert "genstream_deadletter_records 3.0" in scraped
    assert 'genstream_tier_queue_ttl_seconds{tier="free"} 1800.0' in scraped
