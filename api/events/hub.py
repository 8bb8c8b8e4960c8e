"""Per-process fan-out for event streams: who is listening, and waking them.

Lifecycle events are not pushed through here: each stream reads them from PostgreSQL after
its own position, so a slow stream delays nobody and loses nothing. The hub only tells
streams when to look (a ``NOTIFY`` for their user, or the periodic poll that catches what a
lost notification missed) and hands them progress, which exists nowhere else. Progress is
held in a bounded buffer per stream; a stream that lets it overflow is closed, and its
client resumes from its last id.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.events.listener import listen
from api.events.progress_feed import ProgressFeed
from api.read_settings import ReadSettings
from contracts import Envelope
from genstream.db.read_model import JOB_EVENTS_CHANNEL
from genstream.kafka import KafkaSettings

__all__ = ["EventHub", "Subscription"]

_log = logging.getLogger(__name__)

_LATEST = text("SELECT coalesce(max(seq), 0) FROM job_events")
_USERS_WITH_NEWS = text(
    "SELECT DISTINCT user_id FROM job_events"
    " WHERE seq > :after AND seq <= :upto AND user_id IN :users"
).bindparams(bindparam("users", expanding=True))


class Subscription:
    """One open stream: a user's jobs, or one job of theirs."""

    def __init__(self, *, user_id: str, job_id: str | None, capacity: int) -> None:
        self.user_id = user_id
        self.job_id = job_id
        self.signal = asyncio.Event()
        """Set when there may be something to send."""
        self.overflowed = asyncio.Event()
        """Set when the client fell behind by more than the buffer holds."""
        self._capacity = capacity
        self._progress: deque[Envelope[Any]] = deque()
        self._lifecycle_due = True

    def wake(self) -> None:
        self._lifecycle_due = True
        self.signal.set()

    def offer(self, envelope: Envelope[Any]) -> None:
        """Buffers a progress event of the user's; never blocks the caller."""
        if self.job_id is not None and envelope.subject != self.job_id:
            return
        if self.overflowed.is_set():
            return
        if len(self._progress) >= self._capacity:
            self._progress.clear()
            self.overflowed.set()
            return
        self._progress.append(envelope)
        self.signal.set()

    def take_lifecycle_due(self) -> bool:
        due, self._lifecycle_due = self._lifecycle_due, False
        return due

    def take_progress(self) -> list[Envelope[Any]]:
        taken = list(self._progress)
        self._progress.clear()
        return taken


class EventHub:
    """Started on the first stream; ``close`` (at shutdown) stops its listener and feed."""

    def __init__(
        self, *, engine: AsyncEngine, kafka: KafkaSettings, settings: ReadSettings
    ) -> None:
        self._engine = engine
        self._kafka = kafka
        self._settings = settings
        self._by_user: dict[str, set[Subscription]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._feed: ProgressFeed | None = None
        self._start_lock = asyncio.Lock()
        self._started = False
        self._polled_upto = 0

    async def ensure_started(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            loop = asyncio.get_running_loop()
            async with self._engine.connect() as connection:
                self._polled_upto = int((await connection.execute(_LATEST)).scalar_one())
            url = self._engine.url.set(drivername="postgresql")
            self._tasks = [
                asyncio.create_task(
                    listen(
                        url.render_as_string(hide_password=False),
                        JOB_EVENTS_CHANNEL,
                        on_notify=self._wake_user,
                        on_connect=self._wake_all,
                    ),
                    name="event-hub-listener",
                ),
                asyncio.create_task(self._poll(), name="event-hub-poll"),
            ]
            self._feed = ProgressFeed(
                kafka=self._kafka,
                topic=self._settings.progress_topic,
                deliver=lambda batch: loop.call_soon_threadsafe(self._deliver_progress, batch),
            )
            await asyncio.to_thread(self._feed.start)
            self._started = True

    def subscribe(self, *, user_id: str, job_id: str | None) -> Subscription:
        subscription = Subscription(
            user_id=user_id, job_id=job_id, capacity=self._settings.sse_client_buffer
        )
        self._by_user.setdefault(user_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscriptions = self._by_user.get(subscription.user_id)
        if subscriptions is not None:
            subscriptions.discard(subscription)
            if not subscriptions:
                del self._by_user[subscription.user_id]

    def _wake_user(self, user_id: str) -> None:
        for subscription in self._by_user.get(user_id, ()):
            subscription.wake()

    def _wake_all(self) -> None:
        for subscriptions in self._by_user.values():
            for subscription in subscriptions:
                subscription.wake()

    def _deliver_progress(self, batch: Sequence[Envelope[Any]]) -> None:
        for envelope in batch:
            for subscription in self._by_user.get(envelope.user_id, ()):
                subscription.offer(envelope)

    async def _poll(self) -> None:
        """Wakes the streams of users with events no notification announced (a listener
        reconnecting, a notification lost with its connection)."""
        while True:
            await asyncio.sleep(self._settings.sse_poll_s)
            try:
                await self._poll_once()
            except Exception:
                _log.exception("event stream poll failed")

    async def _poll_once(self) -> None:
        async with self._engine.connect() as connection:
            latest = int((await connection.execute(_LATEST)).scalar_one())
            users = sorted(self._by_user)
            if latest > self._polled_upto and users:
                news = await connection.execute(
                    _USERS_WITH_NEWS, {"after": self._polled_upto, "upto": latest, "users": users}
                )
                for (user_id,) in news:
                    self._wake_user(user_id)
        self._polled_upto = max(self._polled_upto, latest)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._feed is not None:
            await asyncio.to_thread(self._feed.close)
            self._feed = None
        self._started = False
