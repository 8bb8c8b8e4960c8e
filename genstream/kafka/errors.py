"""Errors raised by the Kafka kit."""

from __future__ import annotations


class KafkaKitError(Exception):
    """Base class for errors of the Kafka kit."""


class BrokersUnavailableError(KafkaKitError):
    """The cluster did not show the expected brokers before the deadline."""


class TopicSetupError(KafkaKitError):
    """A topic could not be created or grown."""


class DeliveryError(KafkaKitError):
    """The broker did not acknowledge a produced message."""
