"""Dead-letter redrive on the real broker: parked records return to their topics, once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from contracts import TopicSpec
from genstream.cli import main
from genstream.kafka.partitioner import partition_for
from genstream.redrive import redrive
from genstream.settings import StackSettings


def _read_all(
    stack: StackSettings, spec: TopicSpec, expected: int
) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = Consumer(stack.kafka.librdkafka(**{"group.id": f"read-{spec.name}"}))
    consumer.assign([TopicPartition(spec.name, p, 0) for p in range(spec.partitions)])
    records = []
    deadline = time.monotonic() + 20
    while len(records) < expected and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            headers = dict(message.headers() or [])
            headers["partition"] = str(message.partition()).encode()
            records.append((message.value(), headers))
    consumer.close()
    return records


def test_redrive_sends_parked_records_back_once(
    stack: StackSettings, make_topic: Callable[[str], TopicSpec], unique: str
) -> None:
    parked, ledger, other = (
        make_topic("genstream.deadletter"),
        make_topic("credits.ledger"),
        make_topic("jobs.requested"),
    )
    producer = Producer(stack.kafka.librdkafka())
    for n, origin in enumerate([ledger.name, ledger.name, other.name]):
        headers = [("traceparent", b"t"), ("dlq.topic", origin.encode()), ("dlq.error", b"boom")]
        producer.produce(parked.name, value=f"record-{n}".encode(), key=b"k", headers=headers)
    producer.flush(10)

    group = f"redrive-{unique}"
    first = redrive(
        stack.kafka, only_topic=ledger.name, deadletter=parked, group_id=group, idle_s=3
    )
    assert dict(first.redriven) == {ledger.name: 2}
    assert first.skipped == 1

    back = _read_all(stack, ledger, expected=2)
    assert sorted(value for value, _ in back) == [b"record-0", b"record-1"]
    assert all(not name.startswith("dlq.") for _, headers in back for name in headers)
    # Placed by key as every genstream producer places it, next to the key's other records.
    wanted = str(partition_for(b"k", ledger.partitions)).encode()
    assert {headers["partition"] for _, headers in back} == {wanted}
    assert all(headers["traceparent"] == b"t" for _, headers in back)

    again = redrive(stack.kafka, deadletter=parked, group_id=group, idle_s=2)
    assert sum(again.redriven.values()) == 0  # progress was kept: nothing is sent twice


def test_list_and_show_pick_parked_records_by_topic_reason_job_and_position(
    stack: StackSettings,
    make_topic: Callable[[str], TopicSpec],
    unique: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    parked = make_topic("genstream.deadletter")
    producer = Producer(stack.kafka.librdkafka())
    cases = [
        ("jobs.synthetic.free", b"job_a", b"JobFailure: retries_exhausted: boom"),
        ("credits.ledger", b"user_b", b"InvalidEventError: no 'type'"),
        ("jobs.synthetic.free", b"job_c", b"JobFailure: timeout: too slow"),
    ]
    for origin, key, error in cases:
        headers = [("type", b"genstream.job.queued.v1"), ("dlq.topic", origin.encode())]
        headers += [("dlq.error", error), ("dlq.consumer", b"genstream-workers-synthetic")]
        producer.produce(parked.name, value=b'{"a": 1}', key=key, partition=0, headers=headers)
    assert producer.flush(10) == 0
    prefix = ["--topic-prefix", f"test.{unique}."]

    def listed(*args: str) -> list[dict[str, Any]]:
        assert main(["deadletter", "list", "--json", *prefix, *args]) == 0
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    everything = listed()
    assert [(r["key"], r["reason"], r["failed_job"]) for r in everything] == [
        ("job_a", "retries_exhausted", True),
        ("user_b", "InvalidEventError", False),
        ("job_c", "timeout", True),
    ]
    assert [r["key"] for r in listed("--topic", "jobs.synthetic.free")] == ["job_a", "job_c"]
    assert [r["key"] for r in listed("--reason", "timeout")] == ["job_c"]
    assert [r["key"] for r in listed("--job", "user_b")] == ["user_b"]
    assert listed("--since", "1h") == everything
    assert listed("--until", "1h") == []  # all parked within the hour

    position = everything[1]["position"]
    assert main(["deadletter", "show", position, *prefix]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["key"], shown["topic"], shown["value"]) == ("user_b", "credits.ledger", {"a": 1})
    assert shown["headers"]["dlq.error"] == "InvalidEventError: no 'type'"
    assert main(["deadletter", "show", "0:999999", *prefix]) == 1
