"""The contracts as the real broker holds them: every event type through a topic that
carries it, and every topic created with its declared partitions, retention and cleanup."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cloudevents.kafka import KafkaMessage, from_structured
from cloudevents.pydantic import CloudEvent as StrictCloudEvent
from confluent_kafka import Consumer
from confluent_kafka.admin import ConfigResource, ResourceType

import contracts
from contracts import ALL_TOPICS, REGISTRY, Envelope, TopicSpec, decode, topics_for_event
from genstream.kafka import ConsumedEvent, EventConsumer
from genstream.kafka.admin import admin_client
from genstream.settings import StackSettings
from producers import EventProducer

SAMPLES_DIR = Path(contracts.__file__).resolve().parent / "samples" / "v1"


def _fresh_samples(unique: str) -> list[Envelope[contracts.Event]]:
    """One event of every registered type, from its stored v1 sample, under a new id."""
    samples = []
    for path in sorted(SAMPLES_DIR.glob("*.json")):
        data = decode(path.read_bytes()).data
        samples.append(Envelope.wrap(data, user_id=f"user-{unique}", source="genstream/tests"))
    return samples


def _read(stack: StackSettings, spec: TopicSpec, *, group: str, count: int) -> list[ConsumedEvent]:
    with EventConsumer(settings=stack.kafka, group_id=group, topics=[spec.name]) as consumer:
        return consumer.drain(until=lambda events: len(events) >= count, timeout_s=30)


async def test_every_event_type_round_trips_through_a_topic_that_carries_it(
    stack: StackSettings, make_topic: Callable[[str], TopicSpec], unique: str
) -> None:
    sent = _fresh_samples(unique)
    assert {envelope.type for envelope in sent} == set(REGISTRY.models)
    by_topic: dict[str, list[Envelope[contracts.Event]]] = {}
    for envelope in sent:
        by_topic.setdefault(topics_for_event(envelope.type)[0].name, []).append(envelope)
    specs = {name: make_topic(name) for name in by_topic}

    with EventProducer(settings=stack.kafka) as producer:
        for name, envelopes in by_topic.items():
            for envelope in envelopes:
                await producer.send(specs[name], envelope)

    for name, envelopes in by_topic.items():
        received = _read(stack, specs[name], group=f"test-{unique}-{name}", count=len(envelopes))
        by_id = {event.envelope.id: event for event in received}
        assert len(received) == len(envelopes), name
        for envelope in envelopes:
            event = by_id[envelope.id]
            assert event.envelope == envelope
            assert type(event.envelope.data) is REGISTRY.models[envelope.type]
            assert event.headers["type"] == envelope.type.encode()
            assert event.headers["traceparent"] == envelope.trace.encode()
            assert not any(header.startswith("ce_") for header in event.headers)

    # The records as the official CloudEvents SDK reads them, in structured mode.
    for name, envelopes in by_topic.items():
        records = _raw(stack, specs[name], group=f"sdk-{unique}-{name}", count=len(envelopes))
        read = {parsed["id"]: parsed for parsed in map(_sdk_event, records)}
        for envelope in envelopes:
            parsed = read[envelope.id]
            assert (parsed["type"], parsed["source"]) == (envelope.type, envelope.source)
            assert (parsed["userid"], parsed["traceparent"]) == (envelope.user_id, envelope.trace)


def _raw(stack: StackSettings, spec: TopicSpec, *, group: str, count: int) -> list[KafkaMessage]:
    consumer = Consumer(
        stack.kafka.librdkafka("sdk", **{"group.id": group, "auto.offset.reset": "earliest"})
    )
    consumer.subscribe([spec.name])
    records: list[KafkaMessage] = []
    deadline = time.monotonic() + 30
    try:
        while len(records) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            headers = {name: value or b"" for name, value in message.headers() or []}
            records.append(KafkaMessage(headers=headers, key=message.key(), value=message.value()))
    finally:
        consumer.close()
    assert len(records) == count, f"{spec.name}: {len(records)} of {count} records read"
    return records


def _sdk_event(record: KafkaMessage) -> StrictCloudEvent:
    event: StrictCloudEvent = from_structured(record, event_type=StrictCloudEvent)
    return event


def test_every_topic_is_created_as_declared(stack: StackSettings) -> None:
    client = admin_client(stack.kafka)
    metadata = client.list_topics(timeout=30).topics
    resources = [ConfigResource(ResourceType.TOPIC, spec.name) for spec in ALL_TOPICS]
    configs = {
        resource.name: future.result(timeout=30)
        for resource, future in client.describe_configs(resources).items()
    }
    for spec in ALL_TOPICS:
        assert spec.name in metadata, f"{spec.name} is missing"
        assert len(metadata[spec.name].partitions) >= spec.partitions, spec.name
        config = configs[spec.name]
        assert config["cleanup.policy"].value == spec.cleanup_policy, spec.name
        assert config["retention.ms"].value == str(spec.retention_ms), spec.name
    # The promises the rest rests on: lifecycle and ledger kept, progress short, plans a table.
    by_name = {spec.name: spec for spec in ALL_TOPICS}
    assert by_name["jobs.lifecycle"].retention_ms == by_name["credits.ledger"].retention_ms == -1
    assert 0 < by_name["jobs.progress"].retention_ms <= 24 * 60 * 60 * 1000
    assert by_name["users.plans"].cleanup_policy == "compact"
