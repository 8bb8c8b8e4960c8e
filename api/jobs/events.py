"""The events the jobs routes write to ``jobs.requested``, and the wait for their ack."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Annotated, Any, Final

from confluent_kafka import KafkaException
from fastapi import Depends, Request

from api.problems import Problem
from api.settings import JobsSettings
from contracts import JOBS_REQUESTED, Envelope, TopicSpec
from genstream.kafka import DeliveryError
from producers import EventProducer

__all__ = [
    "SOURCE",
    "ProducerDep",
    "emit",
    "get_producer",
    "requested_topic",
    "service_unavailable",
]

SOURCE: Final = "genstream/api"
_log = logging.getLogger(__name__)


def requested_topic(settings: JobsSettings) -> TopicSpec:
    """``jobs.requested`` under the configured name, keyed and partitioned as the contract says."""
    return dataclasses.replace(JOBS_REQUESTED, name=settings.requested_topic)


def service_unavailable() -> Problem:
    return Problem(
        503,
        "the job could not be handed over; try again",
        headers={"Retry-After": "5"},
    )


async def get_producer(request: Request) -> EventProducer:
    producer: EventProducer | None = getattr(request.app.state, "producer", None)
    if producer is None:
        raise Problem(503, "jobs cannot be submitted or cancelled: no event producer")
    return producer


ProducerDep = Annotated[EventProducer, Depends(get_producer)]


async def emit(
    producer: EventProducer, topic: TopicSpec, envelope: Envelope[Any], *, timeout_s: float
) -> None:
    """Sends ``envelope`` and waits for the broker's ack; 503 when none comes in time."""
    try:
        await asyncio.wait_for(producer.send(topic, envelope), timeout_s)
    except (DeliveryError, KafkaException, BufferError, TimeoutError) as error:
        _log.warning(
            "event not acknowledged",
            extra={"event_type": envelope.type, "subject": envelope.subject, "error": repr(error)},
        )
        raise service_unavailable() from None
