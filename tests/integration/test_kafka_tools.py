"""Kafka's own command-line tools, through infra/kafka-tools.sh, against the running stack."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from contracts import TopicSpec
from genstream.settings import StackSettings

TOOLS = Path(__file__).resolve().parents[2] / "infra" / "kafka-tools.sh"


def _tool(*args: str) -> str:
    done = subprocess.run(
        [str(TOOLS), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_consumer_groups_describe_shows_the_lag_a_group_left(
    stack: StackSettings, make_topic: Callable[[str], TopicSpec], unique: str
) -> None:
    topic = make_topic("jobs.requested")
    producer = Producer(stack.kafka.producer_config())
    for _ in range(5):
        producer.produce(topic.name, value=b"x", key=b"k", partition=0)
    assert producer.flush(30) == 0
    group = f"tools-{unique}"
    consumer = Consumer(stack.kafka.librdkafka(**{"group.id": group}))
    consumer.commit(offsets=[TopicPartition(topic.name, 0, 2)], asynchronous=False)
    consumer.close()

    rows = [
        line.split()
        for line in _tool("kafka-consumer-groups", "--describe", "--group", group).splitlines()
        if line.startswith(group)
    ]
    # GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
    assert [row[1:6] for row in rows] == [[topic.name, "0", "2", "5", "3"]]
    assert topic.name in _tool("topics", "--list").split()
