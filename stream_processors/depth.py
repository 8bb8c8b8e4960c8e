"""How many dispatched jobs wait on each tier topic: the topic's end minus its workers' position."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from contracts import TIER_TOPICS, Tier, TopicSpec, Workload, worker_group
from genstream.kafka import KafkaSettings


def tier_depths(
    settings: KafkaSettings,
    tiers: Mapping[str, TopicSpec],
    *,
    group_of: Callable[[Workload], str] = worker_group,
    timeout_s: float = 5.0,
) -> dict[tuple[Workload, Tier], int]:
    """Records on each tier topic that the workload's group has not consumed yet.

    ``tiers`` maps contract tier-topic names to the topics actually used (they differ when a
    prefix is in force). A group that never committed counts from the start of the topic.
    """
    admin = AdminClient(settings.librdkafka())
    reader = Consumer(settings.librdkafka(**{"group.id": "genstream-depth"}))
    depths: dict[tuple[Workload, Tier], int] = {}
    try:
        for (workload, tier), contract_spec in TIER_TOPICS.items():
            spec = tiers.get(contract_spec.name, contract_spec)
            partitions = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
            ends = {
                tp.partition: reader.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
                for tp in partitions
            }
            request = ConsumerGroupTopicPartitions(group_of(workload), partitions)
            answer = admin.list_consumer_group_offsets([request], request_timeout=timeout_s)
            committed = {
                tp.partition: tp.offset
                for tp in next(iter(answer.values())).result().topic_partitions
                if tp.topic == spec.name
            }
            depth = 0
            for partition, (low, high) in ends.items():
                position = committed.get(partition, -1)
                depth += max(0, high - max(position, low))
            depths[(workload, tier)] = depth
    except KafkaException:
        return depths
    finally:
        reader.close()
    return depths
