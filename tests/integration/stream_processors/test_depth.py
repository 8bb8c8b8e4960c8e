"""Tier-topic depth, the metric of work waiting for GPU workers, measured on the real broker."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from confluent_kafka import Consumer, TopicPartition

from contracts import Envelope, JobQueued, JobType, SyntheticInput, Tier, Workload
from genstream.kafka import delete_topics, ensure_topics
from genstream.settings import StackSettings
from producers import EventProducer
from stream_processors.depth import tier_depths, worker_group
from stream_processors.topology import Topology

_EVERY_TIER = len(Workload) * len(Tier)


def _all_depths(
    stack: StackSettings, topology: Topology, group_of: Callable[[Workload], str]
) -> dict[tuple[Workload, Tier], int]:
    """Every tier's depth. ``tier_depths`` leaves out what the brokers could not answer in
    time (new topics' partitions may not be known yet, a loaded machine may miss its
    timeout): asked again until complete."""
    deadline = time.monotonic() + 60
    while True:
        depths = tier_depths(stack.kafka, topology.tiers, group_of=group_of)
        if len(depths) == _EVERY_TIER:
            return depths
        assert time.monotonic() < deadline, f"depths still incomplete: {depths}"


def _queued(job_id: str, topic: str) -> Envelope[JobQueued]:
    data = JobQueued(
        job_id=job_id,
        job_type=JobType.SYNTHETIC,
        tier=Tier.FREE,
        input=SyntheticInput(kind="synthetic", steps=1, step_ms=0),
        attempt=1,
        topic=topic,
        deadline=datetime.now(UTC),
    )
    return Envelope.wrap(data, user_id="u", source="genstream/tests")


def test_depth_counts_what_the_workers_have_not_taken(stack: StackSettings, unique: str) -> None:
    topology = Topology(prefix=f"test.{unique}.")
    tiers = list(topology.tiers.values())
    ensure_topics(stack.kafka, tiers)
    try:
        spec = topology.tiers["jobs.synthetic.free"]
        with EventProducer(settings=stack.kafka) as producer:
            deliveries = [
                producer.send_and_wait(spec, _queued(f"{unique}-{n}", "jobs.synthetic.free"))
                for n in range(3)
            ]

        def group_of(workload: Workload) -> str:
            return f"test-{unique}-{worker_group(workload)}"

        depths = _all_depths(stack, topology, group_of)
        assert depths[(Workload.SYNTHETIC, Tier.FREE)] == 3
        assert sum(depths.values()) == 3

        # The synthetic workers take the first record: one less is waiting.
        first = deliveries[0]
        consumer = Consumer(stack.kafka.librdkafka(**{"group.id": group_of(Workload.SYNTHETIC)}))
        position = TopicPartition(spec.name, first.partition, first.offset + 1)
        consumer.commit(offsets=[position], asynchronous=False)
        consumer.close()
        later = _all_depths(stack, topology, group_of)
        assert later[(Workload.SYNTHETIC, Tier.FREE)] == 2
    finally:
        delete_topics(stack.kafka, [spec.name for spec in tiers])
