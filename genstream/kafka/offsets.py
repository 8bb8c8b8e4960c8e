"""Partition offsets and a group's committed positions, asked of the brokers by an admin client.

What ``kafka-consumer-groups --describe`` reads: a partition's log end offset and the
group's committed offset; their difference is the group's lag there. An answer the brokers
did not give within the timeout is left out rather than guessed.
"""

from __future__ import annotations

from typing import Final

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec  # not in the package's stubs

__all__ = ["EARLIEST", "LATEST", "Position", "committed_offsets", "partition_offsets"]

Position = tuple[str, int]
"""A topic and a partition number."""

EARLIEST: Final = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
LATEST: Final = OffsetSpec.latest()  # type: ignore[no-untyped-call]


def partition_offsets(
    admin: AdminClient, partitions: list[TopicPartition], spec: OffsetSpec, timeout_s: float
) -> dict[Position, int]:
    """Each partition's offset by ``spec`` (``EARLIEST``, ``LATEST``), where the brokers
    answered; one request for all of them."""
    found: dict[Position, int] = {}
    if not partitions:
        return found
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


def committed_offsets(
    admin: AdminClient, group: str, partitions: list[TopicPartition] | None, timeout_s: float
) -> dict[Position, int] | None:
    """The group's committed offsets (absent where it never committed; every partition it
    committed when ``partitions`` is None); None when the brokers did not answer."""
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
