"""The transactional outbox: events staged in the same database transaction as the change.

A route that changes the database and owes an event calls ``stage`` inside its transaction;
either both commit or neither does. The relay (``producers.outbox_relay``) publishes staged
events to Kafka afterwards.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Envelope, TopicSpec, encode, kafka_headers, partition_key
from genstream.db import OutboxMessage


def outbox_message(spec: TopicSpec, envelope: Envelope[Any]) -> OutboxMessage:
    return OutboxMessage(
        event_id=uuid.UUID(envelope.id),
        topic=spec.name,
        key=partition_key(envelope, spec),
        value=encode(envelope),
        headers=[[name, value.decode()] for name, value in kafka_headers(envelope)],
    )


def stage(session: AsyncSession, spec: TopicSpec, envelope: Envelope[Any]) -> None:
    """Adds the event to the session's transaction; it is published once that commits."""
    session.add(outbox_message(spec, envelope))
