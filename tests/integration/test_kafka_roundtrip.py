"""A typed event through the real broker: idempotent producer (acks=all) to consumer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from contracts import (
    Envelope,
    JobRequested,
    JobType,
    SyntheticInput,
    TopicSpec,
)
from genstream.kafka import EventConsumer
from genstream.settings import StackSettings
from producers import EventProducer


def _requested(user_id: str, job_id: str) -> Envelope[JobRequested]:
    data = JobRequested(
        job_id=job_id,
        job_type=JobType.SYNTHETIC,
        input=SyntheticInput(kind="synthetic", steps=3, step_ms=0),
        idempotency_key=f"idem-{job_id}",
        webhook_url=None,
        requested_at=datetime.now(UTC),
    )
    return Envelope.wrap(data, user_id=user_id, source="genstream/tests")


async def test_event_round_trips_through_the_broker(
    stack: StackSettings, make_topic: Callable[[str], TopicSpec], unique: str
) -> None:
    spec = make_topic("jobs.requested")
    sent = [_requested(f"user-{unique}", f"job-{unique}-{n}") for n in range(5)]

    with EventProducer(settings=stack.kafka) as producer:
        deliveries = [await producer.send(spec, envelope) for envelope in sent]

    # Keyed by user: one user's commands share a partition, in the order they were sent.
    assert {d.partition for d in deliveries} == {deliveries[0].partition}
    assert [d.offset for d in deliveries] == sorted(d.offset for d in deliveries)

    with EventConsumer(
        settings=stack.kafka, group_id=f"test-{unique}", topics=[spec.name]
    ) as consumer:
        received = consumer.drain(until=lambda events: len(events) >= len(sent), timeout_s=30)
        consumer.commit(received[-1])

    assert [event.envelope for event in received] == sent
    first = received[0]
    assert first.key == f"user-{unique}".encode()
    assert isinstance(first.envelope.data, JobRequested)
    assert first.envelope.data.input == SyntheticInput(kind="synthetic", steps=3, step_ms=0)
    assert first.headers["traceparent"] == sent[0].trace.encode()
    assert first.headers["type"] == b"genstream.job.requested.v1"
    assert first.headers["id"] == sent[0].id.encode()
    assert first.headers["content-type"] == b"application/cloudevents+json"


def test_blocking_send_reports_partition_and_offset(
    stack: StackSettings, make_topic: Callable[[str], TopicSpec], unique: str
) -> None:
    spec = make_topic("jobs.requested")
    with EventProducer(settings=stack.kafka) as producer:
        first = producer.send_and_wait(spec, _requested(f"user-{unique}", f"job-{unique}-a"))
        second = producer.send_and_wait(spec, _requested(f"user-{unique}", f"job-{unique}-b"))
    assert first.topic == spec.name
    assert (second.partition, second.offset) == (first.partition, first.offset + 1)


def test_committed_offsets_resume_a_consumer_group(
    stack: StackSettings, make_topic: Callable[[str], TopicSpec], unique: str
) -> None:
    spec = make_topic("jobs.requested")
    group = f"test-{unique}"
    with EventProducer(settings=stack.kafka) as producer:
        for n in range(4):
            producer.send_and_wait(spec, _requested(f"user-{unique}", f"job-{unique}-{n}"))

    with EventConsumer(settings=stack.kafka, group_id=group, topics=[spec.name]) as consumer:
        first_two = consumer.drain(until=lambda events: len(events) >= 2, timeout_s=30)[:2]
        consumer.commit(first_two[-1])

    with EventConsumer(settings=stack.kafka, group_id=group, topics=[spec.name]) as consumer:
        rest = consumer.drain(until=lambda events: len(events) >= 2, timeout_s=30)

    subjects = [event.envelope.subject for event in first_two + rest]
    assert subjects == [f"job-{unique}-{n}" for n in range(4)]
