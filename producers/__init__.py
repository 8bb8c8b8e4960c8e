"""Writers to Kafka from outside a stream."""

from producers.event_producer import Delivery, EventProducer

__all__ = ["Delivery", "EventProducer"]
