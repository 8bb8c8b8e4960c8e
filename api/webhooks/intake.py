"""Reads the lifecycle (and progress) and records the deliveries its events owe.

A job's end is owed to its ``webhook_url``; its starts, previews and progress too where its
owner subscribed to them, progress at most ``PROGRESS_PER_S`` a second per job (by the
events' own times, so a re-read batch thins the same way). Download URLs are signed as the
delivery is recorded.

A batch's deliveries are committed to PostgreSQL before the batch's offsets are committed to
Kafka. A crash between the two reads the batch again, which records nothing new (deliveries
are keyed by event id and URL), so nothing is lost and nothing is owed twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Message

from api.webhooks.links import Signer
from api.webhooks.payload import Links, announcement
from api.webhooks.store import DeliveryStore, NewDelivery
from api.webhooks.subscriptions import PROGRESS_PER_S, WebhookEvent, subscription_of
from contracts import ContractError, Envelope
from genstream.db.outages import through_outages
from genstream.kafka import EventConsumer

__all__ = ["Intake", "skip_invalid"]

_log = logging.getLogger(__name__)
_PROGRESS_JOBS = 10_000
"""Jobs whose last progress time is remembered for thinning (the least recent forgotten)."""


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
        signer: Signer | None = None,
    ) -> None:
        self._consumer = consumer
        self._store = store
        self._batch_size = batch_size
        self._max_age = timedelta(seconds=max_event_age_s) if max_event_age_s else None
        self._on_recorded = on_recorded
        self._signer = signer
        self._progress_at: OrderedDict[str, datetime] = OrderedDict()
        """When each recent job's last announced progress happened."""

    def step(self, stop: threading.Event | None = None) -> int:
        """One batch; returns how many deliveries it recorded.

        While PostgreSQL is unreachable the batch is held and recorded again until it goes
        in; when ``stop`` is set first, its offsets are not committed and it is read again.
        """
        batch = self._consumer.poll_batch(max_records=self._batch_size, timeout=0.2)
        owed = [
            envelope
            for envelope in (event.envelope for event in batch.events)
            if self._announced(envelope)
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

    def _announced(self, envelope: Envelope[Any]) -> bool:
        if subscription_of(envelope.data) is None:
            return False
        return self._max_age is None or datetime.now(UTC) - envelope.time <= self._max_age

    def _progress_due(self, job_id: str, at: datetime) -> bool:
        last = self._progress_at.get(job_id)
        # The same event again (a batch recorded again after an outage) is due again.
        if (
            last is not None
            and last != at
            and abs((at - last).total_seconds()) < 1 / PROGRESS_PER_S
        ):
            return False
        self._progress_at[job_id] = at
        self._progress_at.move_to_end(job_id)
        while len(self._progress_at) > _PROGRESS_JOBS:
            self._progress_at.popitem(last=False)
        return True

    def _links(self, user_id: str, job_id: str) -> Links | None:
        signer = self._signer
        if signer is None:
            return None
        return lambda keys: signer(user_id, job_id, keys)

    def _deliveries(self, owed: list[Envelope[Any]]) -> list[NewDelivery]:
        targets = self._store.targets(envelope.data.job_id for envelope in owed)
        deliveries: dict[tuple[str, str], NewDelivery] = {}
        for envelope in owed:
            job_id = envelope.data.job_id
            target = targets.get(job_id)
            subscription = subscription_of(envelope.data)
            if target is None or subscription not in target.events:
                continue
            if str(target.user_id) != envelope.user_id:
                # Another user's event about this job: announcing it would leak it.
                _log.warning(
                    "event user is not the job's owner; not announced",
                    extra={"job_id": job_id, "event_id": envelope.id},
                )
                continue
            if subscription is WebhookEvent.PROGRESS and not self._progress_due(
                job_id, envelope.time
            ):
                continue
            found = announcement(envelope, self._links(envelope.user_id, job_id))
            if found is None:
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
