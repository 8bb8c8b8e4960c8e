"""Reads the lifecycle and records the deliveries its terminal events owe.

A batch's deliveries are committed to PostgreSQL before the batch's offsets are committed to
Kafka. A crash between the two reads the batch again, which records nothing new (deliveries
are keyed by event id and URL), so nothing is lost and nothing is owed twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Message

from api.webhooks.payload import Announcement, announcement
from api.webhooks.store import DeliveryStore, NewDelivery
from contracts import ContractError, Envelope
from genstream.db.outages import through_outages
from genstream.kafka import EventConsumer

__all__ = ["Intake", "skip_invalid"]

_log = logging.getLogger(__name__)


def skip_invalid(message: Message, error: ContractError) -> None:
    """Passes over a record that is not a valid event.

    The lifecycle's own consumers park such records; parking a second copy here would
    only make a redrive write the record back twice.
    """
    _log.warning(
        "record skipped: not a valid event",
        extra={"topic": message.topic(), "offset": message.offset(), "error": str(error)[:300]},
    )


class Intake:
    def __init__(
        self,
        *,
        consumer: EventConsumer,
        store: DeliveryStore,
        batch_size: int = 500,
        max_event_age_s: float | None = None,
        on_recorded: Callable[[], None] = lambda: None,
    ) -> None:
        self._consumer = consumer
        self._store = store
        self._batch_size = batch_size
        self._max_age = timedelta(seconds=max_event_age_s) if max_event_age_s else None
        self._on_recorded = on_recorded

    def step(self, stop: threading.Event | None = None) -> int:
        """One batch; returns how many deliveries it recorded.

        While PostgreSQL is unreachable the batch is held and recorded again until it goes
        in; when ``stop`` is set first, its offsets are not committed and it is read again.
        """
        batch = self._consumer.poll_batch(max_records=self._batch_size, timeout=0.2)
        owed = [
            (envelope, found)
            for envelope in (event.envelope for event in batch.events)
            if (found := self._announced(envelope)) is not None
        ]
        recorded = 0
        if owed:
            outcome = through_outages(
                lambda: self._store.record(self._deliveries(owed)),
                stop=stop or threading.Event(),
                what="the webhook intake",
            )
            if outcome is None:
                return 0
            (recorded,) = outcome
        self._consumer.commit_offsets(batch.offsets)
        if recorded:
            _log.info("deliveries recorded", extra={"recorded": recorded})
            self._on_recorded()
        return recorded

    def _announced(self, envelope: Envelope[Any]) -> Announcement | None:
        found = announcement(envelope)
        too_old = self._max_age is not None and datetime.now(UTC) - envelope.time > self._max_age
        return None if too_old else found

    def _deliveries(self, owed: list[tuple[Envelope[Any], Announcement]]) -> list[NewDelivery]:
        targets = self._store.targets(found.job_id for _, found in owed)
        deliveries: dict[tuple[str, str], NewDelivery] = {}
        for envelope, found in owed:
            target = targets.get(found.job_id)
            if target is None:
                continue
            if str(target.user_id) != envelope.user_id:
                # Another user's event about this job: announcing it would leak it.
                _log.warning(
                    "event user is not the job's owner; not announced",
                    extra={"job_id": found.job_id, "event_id": found.event_id},
                )
                continue
            deliveries.setdefault(
                (found.event_id, target.url),
                NewDelivery(
                    event_id=found.event_id,
                    event_type=found.event_type,
                    job_id=found.job_id,
                    user_id=target.user_id,
                    url=target.url,
                    payload=found.body,
                ),
            )
        return list(deliveries.values())

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step(stop)

    def drain(self, *, until: Callable[[], bool], timeout_s: float) -> bool:
        """Steps until ``until()`` holds or the deadline passes; returns whether it held."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if until():
                return True
            self.step()
        return until()
