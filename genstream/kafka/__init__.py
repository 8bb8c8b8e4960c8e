"""Kafka kit: typed settings, administration, and a consumer of typed events."""

from genstream.kafka.admin import (
    delete_groups,
    delete_topics,
    ensure_topics,
    wait_for_brokers,
    wait_for_group_coordinator,
)
from genstream.kafka.config import KafkaSettings
from genstream.kafka.consumer import ConsumedEvent, EventBatch, EventConsumer
from genstream.kafka.deadletter import DeadLetters
from genstream.kafka.errors import (
    BrokersUnavailableError,
    DeliveryError,
    KafkaKitError,
    TopicSetupError,
)

__all__ = [
    "BrokersUnavailableError",
    "ConsumedEvent",
    "DeadLetters",
    "DeliveryError",
    "EventBatch",
    "EventConsumer",
    "KafkaKitError",
    "KafkaSettings",
    "TopicSetupError",
    "delete_groups",
    "delete_topics",
    "ensure_topics",
    "wait_for_brokers",
    "wait_for_group_coordinator",
]
