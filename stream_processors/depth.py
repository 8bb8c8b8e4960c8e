"""How many dispatched jobs wait on each tier topic: the topic's end minus its workers' position."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec  # not in the package's stubs

from contracts import TIER_TOPICS, Tier, TopicSpec, Workload, worker_group
from genstream.kafka import KafkaSettings

Position = tuple[str, int]

_EARLIEST: Final = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
_LATEST: Final = OffsetSpec.latest()  # type: ignore[no-untyped-call]


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
    starts = _offsets(admin, partitions, _EARLIEST, timeout_s)
    ends = _offsets(admin, partitions, _LATEST, timeout_s)
    depths: dict[tuple[Workload, Tier], int] = {}
    for workload in dict.fromkeys(workload for workload, _ in specs):
        own = {tier: spec for (of, tier), spec in specs.items() if of == workload}
        committed = _committed(admin, group_of(workload), _partitions(own.values()), timeout_s)
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


def _offsets(
    admin: AdminClient, partitions: list[TopicPartition], spec: OffsetSpec, timeout_s: float
) -> dict[Position, int]:
    """Each partition's offset by ``spec``, where the brokers answered."""
    found: dict[Position, int] = {}
    try:
        futures = admin.list_offsets(dict.fromkeys(partitions, spec), request_timeout=timeout_s)
    except KafkaException:
        return found
    for tp, future in futures.items():
        try:
            found[(tp.topic, tp.partition)] = future.result().offset
        except KafkaException:
            continue
    return found


def _committed(
    admin: AdminClient, group: str, partitions: list[TopicPartition], timeout_s: float
) -> dict[Position, int] | None:
    """The group's committed positions (absent where it never committed); None when the
    brokers did not answer."""
    request = ConsumerGroupTopicPartitions(group, partitions)
    try:
        answer = admin.list_consumer_group_offsets([request], request_timeout=timeout_s)
        result = next(iter(answer.values())).result()
    except KafkaException:
        return None
    return {
        (tp.topic, tp.partition): tp.offset
        for tp in result.topic_partitions
        if tp.offset >= 0 and tp.error is None
    }
