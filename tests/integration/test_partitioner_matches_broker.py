"""Records produced by genstream land where Kafka's default partitioner says they do."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from contracts import Envelope, JobRequested, JobType, SyntheticInput, TopicSpec
from genstream.kafka.partitioner import partition_for
from genstream.settings import StackSettings
from producers import EventProducer


def _requested(user_id: str, job_id: str) -> Envelope[JobRequested]:
    data = JobRequested(
        job_id=job_id,
        job_type=JobType.SYNTHETIC,
        input=SyntheticInput(kind="synthetic", steps=1, step_ms=0),
        idempotency_key=f"idem-{job_id}",
        webhook_url=None,
        requested_at=datetime.now(UTC),
    )
    return Envelope.wrap(data, user_id=user_id, source="genstream/tests")


async def test_event_producer_places_keys_like_the_java_client(
    stack: StackSettings, make_topic: Callable[[str], TopicSpec], unique: str
) -> None:
    spec = make_topic("jobs.requested")
    assert spec.partitions == 12
    users = [f"user-{unique}-{n}" for n in range(50)]

    with EventProducer(settings=stack.kafka) as producer:
        deliveries = {
            user: await producer.send(spec, _requested(user, f"job-{unique}-{n}"))
            for n, user in enumerate(users)
        }

    placed = {user: delivery.partition for user, delivery in deliveries.items()}
    assert placed == {user: partition_for(user.encode(), 12) for user in users}
    # 50 keys over 12 partitions: a partitioner that ignored the key would not match above,
    # and one that hashed every key alike would use a single partition.
    assert len(set(placed.values())) > 6
