"""Cluster administration: wait for brokers, create and grow topics from their specs."""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewPartitions, NewTopic

from contracts import TopicSpec
from genstream.kafka.config import KafkaSettings
from genstream.kafka.errors import BrokersUnavailableError, TopicSetupError


def admin_client(settings: KafkaSettings) -> AdminClient:
    return AdminClient(settings.librdkafka())


def wait_for_brokers(settings: KafkaSettings, *, expected: int, timeout_s: float = 60.0) -> int:
    """Polls cluster metadata until ``expected`` brokers are registered."""
    client = admin_client(settings)
    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline:
        try:
            seen = len(client.list_topics(timeout=5).brokers)
        except KafkaException:
            seen = 0
        if seen >= expected:
            return seen
        time.sleep(0.2)
    raise BrokersUnavailableError(
        f"{seen} of {expected} Kafka brokers at {settings.bootstrap_servers} after {timeout_s:.0f}s"
    )


def wait_for_group_coordinator(
    settings: KafkaSettings, *, topic: str, timeout_s: float = 60.0
) -> None:
    """Waits until consumer groups work, which creates the offsets topic on a new cluster.

    Doing this while every broker is up matters on a replicated cluster: the offsets topic
    is created with the full replication factor, which a cluster missing a broker refuses.
    """
    consumer = Consumer(settings.librdkafka(**{"group.id": "genstream-bootstrap"}))
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                consumer.committed([TopicPartition(topic, 0)], timeout=5)
                return
            except KafkaException as exc:
                if time.monotonic() >= deadline:
                    raise BrokersUnavailableError(f"no group coordinator: {exc}") from exc
    finally:
        consumer.close()


def _topic_config(spec: TopicSpec, settings: KafkaSettings) -> dict[str, str]:
    # The spec fixes retention and cleanup; durability depends on the cluster it lands on.
    return {**spec.config(), "min.insync.replicas": str(settings.min_insync_replicas)}


def ensure_topics(
    settings: KafkaSettings, specs: Iterable[TopicSpec], *, timeout_s: float = 60.0
) -> list[str]:
    """Creates missing topics and grows ones with fewer partitions than their spec.

    Returns the names created. Existing topics keep their data; partitions are never shrunk
    since Kafka cannot do that without losing key order.
    """
    client = admin_client(settings)
    existing = client.list_topics(timeout=timeout_s).topics
    wanted = list(specs)
    new = [
        NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=spec.replication_factor or settings.replication_factor,
            config=_topic_config(spec, settings),
        )
        for spec in wanted
        if spec.name not in existing
    ]
    grow = [
        NewPartitions(spec.name, spec.partitions)
        for spec in wanted
        if spec.name in existing and len(existing[spec.name].partitions) < spec.partitions
    ]
    created: list[str] = []
    futures = client.create_topics(new, operation_timeout=timeout_s) if new else {}
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise TopicSetupError(f"creating topic {name}: {exc}") from exc
    for name, future in (client.create_partitions(grow) if grow else {}).items():
        try:
            future.result()
        except KafkaException as exc:
            raise TopicSetupError(f"growing topic {name}: {exc}") from exc
    return created


def delete_topics(
    settings: KafkaSettings, names: Iterable[str], *, timeout_s: float = 60.0
) -> None:
    client = admin_client(settings)
    targets = list(names)
    if not targets:
        return
    for name, future in client.delete_topics(targets, operation_timeout=timeout_s).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].name() != "UNKNOWN_TOPIC_OR_PART":
                raise TopicSetupError(f"deleting topic {name}: {exc}") from exc


def delete_groups(
    settings: KafkaSettings, names: Iterable[str], *, timeout_s: float = 30.0
) -> None:
    """Deletes consumer groups (their committed positions); a group still in use, or gone
    already, is left as it is."""
    targets = list(names)
    if not targets:
        return
    client = admin_client(settings)
    for future in client.delete_consumer_groups(targets, request_timeout=timeout_s).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].name() not in ("GROUP_ID_NOT_FOUND", "NON_EMPTY_GROUP"):
                raise TopicSetupError(f"deleting a consumer group: {exc}") from exc
