"""How many dispatched jobs wait on each tier topic: the topic's end minus its workers' position."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from contracts import TIER_TOPICS, Tier, TopicSpec, Workload, worker_group
from genstream.kafka import KafkaSettings
from genstream.kafka.offsets import EARLIEST, LATEST, committed_offsets, partition_offsets


def tier_depths(
    settings: KafkaSettings,
    tiers: Mapping[str, TopicSpec],
    *,
    group_of: Callable[[Workload], str] = worker_group,
    timeout_s: float = 5.0,
    admin: AdminClient | None = None,
) -> dict[tuple[Workload, Tier], int]:
    """Records on each tier topic that the workload's group has not consumed yet.

    ``tiers`` maps contract tier-topic names to the topics actually used (they differ when a
    prefix is in force). A group that never committed counts from the start of the topic. A
    tier the brokers did not answer for within ``timeout_s`` is left out. The brokers are
    asked once for every partition's start, once for their ends and once per workload for
    its group's positions; ``admin`` is reused when given (a caller that asks again and
    again), else one is made for the call.
    """
    admin = admin or AdminClient(settings.librdkafka("depth"))
    specs = {key: tiers.get(spec.name, spec) for key, spec in TIER_TOPICS.items()}
    partitions = _partitions(specs.values())
    starts = partition_offsets(admin, partitions, EARLIEST, timeout_s)
    ends = partition_offsets(admin, partitions, LATEST, timeout_s)
    depths: dict[tuple[Workload, Tier], int] = {}
    for workload in dict.fromkeys(workload for workload, _ in specs):
        own = {tier: spec for (of, tier), spec in specs.items() if of == workload}
        committed = committed_offsets(
            admin, group_of(workload), _partitions(own.values()), timeout_s
        )
        if committed is None:
            continue
        for tier, spec in own.items():
            keys = [(spec.name, partition) for partition in range(spec.partitions)]
            if not all(key in starts and key in ends for key in keys):
                continue
            depths[(workload, tier)] = sum(
                max(0, ends[key] - max(committed.get(key, -1), starts[key])) for key in keys
            )
    return depths


def _partitions(specs: Iterable[TopicSpec]) -> list[TopicPartition]:
    return [
        TopicPartition(spec.name, partition)
        for spec in specs
        for partition in range(spec.partitions)
    ]
