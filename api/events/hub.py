"""Per-process fan-out for event streams: who is listening, and handing them their events.

Each user with streams open here has a ``UserFeed``: told of the user's new lifecycle events
(a ``NOTIFY`` for the user, or the periodic poll that catches what a lost notification
missed), it reads them once and hands them to each of the user's streams. Progress, which
exists nowhere else, comes from the process's own reader of the progress topic. Streams
hold what they were handed in bounded buffers; a stream that lets one overflow is closed,
and its client resumes from its last id.

The hub reads with an engine of its own, whose small pool request handlers never share:
however many streams are open, they take no connection a request needs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.events.lifecycle import LifecycleReader, Links
from api.events.progress_feed import ProgressFeed
from api.events.slots import StreamSlots
from api.events.subscription import Subscription
from api.events.user_feed import UserFeed
from api.pg_listener import listen
from api.read_settings import ReadSettings
from contracts import Envelope
from genstream.db.read_model import JOB_EVENTS_CHANNEL
from genstream.kafka import KafkaSettings

__all__ = ["EventHub"]

_log = logging.getLogger(__name__)

_LATEST = text("SELECT coalesce(max(seq), 0) FROM job_events")
_USERS_WITH_NEWS = text(
    "SELECT DISTINCT user_id FROM job_events"
    " WHERE seq > :after AND seq <= :upto AND user_id IN :users"
).bindparams(bindparam("users", expanding=True))


class EventHub:
    """Started on the first stream; ``close`` (at shutdown) stops its listener and feeds.

    ``engine`` is the streams' own (a small pool of their own); ``links`` signs the
    download links of the events it frames.
    """

    def __init__(
        self, *, engine: AsyncEngine, kafka: KafkaSettings, settings: ReadSettings, links: Links
    ) -> None:
        self._engine = engine
        self._kafka = kafka
        self._settings = settings
        self.reader = LifecycleReader(engine, links=links)
        self.slots = StreamSlots(
            per_user=settings.sse_streams_per_user, per_api_key=settings.sse_streams_per_api_key
        )
        self._feeds: dict[str, UserFeed] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._progress: ProgressFeed | None = None
        self._start_lock = asyncio.Lock()
        self._started = False
        self._polled_upto = 0
        self._seen_latest = 0
        """The greatest ``seq`` read so far: where a new user's feed starts reading."""
        self._latest_waiting: list[asyncio.Future[int]] = []
        self._latest_reader: asyncio.Task[None] | None = None

    async def ensure_started(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            loop = asyncio.get_running_loop()
            async with self._engine.connect() as connection:
                self._polled_upto = int((await connection.execute(_LATEST)).scalar_one())
            self._seen(self._polled_upto)
            url = self._engine.url.set(drivername="postgresql")
            self._tasks = [
                asyncio.create_task(
                    listen(
                        url.render_as_string(hide_password=False),
                        JOB_EVENTS_CHANNEL,
                        on_notify=self._announce,
                        on_connect=self._announce_all,
                    ),
                    name="event-hub-listener",
                ),
                asyncio.create_task(self._poll(), name="event-hub-poll"),
            ]
            self._progress = ProgressFeed(
                kafka=self._kafka,
                topic=self._settings.progress_topic,
                deliver=lambda batch: loop.call_soon_threadsafe(self._deliver_progress, batch),
            )
            await asyncio.to_thread(self._progress.start)
            self._started = True

    def subscribe(self, *, user_id: str, job_id: str | None) -> Subscription:
        """A stream of the user's that is handed every stored event after its
        ``handed_after`` (and progress from now on); it reads those before that itself."""
        subscription = Subscription(
            user_id=user_id, job_id=job_id, capacity=self._settings.sse_client_buffer
        )
        feed = self._feeds.get(user_id)
        if feed is None:
            feed = self._feeds[user_id] = UserFeed(
                user_id=user_id, after=self._seen_latest, reader=self.reader
            )
            feed.join(subscription)
            # What was stored after that point was announced to nobody here yet.
            feed.announce()
        else:
            feed.join(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        feed = self._feeds.get(subscription.user_id)
        if feed is not None:
            feed.subscriptions.discard(subscription)
            if not feed.subscriptions:
                # A read in flight finds nobody left, and ends.
                del self._feeds[subscription.user_id]

    async def latest_seq(self) -> int:
        """The greatest ``job_events.seq`` as read at some moment after this call began.

        Streams open by the hundred at once: callers who arrive while a read is running
        share the next one, so each round trip to the database serves them all.
        """
        waiting: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._latest_waiting.append(waiting)
        if self._latest_reader is None:
            self._latest_reader = asyncio.create_task(self._read_latest(), name="event-hub-latest")
        return await waiting

    def _seen(self, latest: int) -> None:
        self._seen_latest = max(self._seen_latest, latest)

    async def _read_latest(self) -> None:
        batch: list[asyncio.Future[int]] = []
        try:
            while self._latest_waiting:
                batch, self._latest_waiting = self._latest_waiting, []
                try:
                    async with self._engine.connect() as connection:
                        latest = int((await connection.execute(_LATEST)).scalar_one())
                except Exception as error:
                    for waiting in batch:
                        if not waiting.done():
                            waiting.set_exception(error)
                    continue
                self._seen(latest)
                for waiting in batch:
                    if not waiting.done():
                        waiting.set_result(latest)
        finally:
            self._latest_reader = None
            # Cancelled at shutdown: nobody is left to read for its callers.
            for waiting in (*batch, *self._latest_waiting):
                waiting.cancel()

    def _announce(self, user_id: str) -> None:
        feed = self._feeds.get(user_id)
        if feed is not None:
            feed.announce()

    def _announce_all(self) -> None:
        for feed in self._feeds.values():
            feed.announce()

    def _deliver_progress(self, batch: Sequence[Envelope[Any]]) -> None:
        for envelope in batch:
            feed = self._feeds.get(envelope.user_id)
            if feed is not None:
                for subscription in feed.subscriptions:
                    subscription.offer(envelope)

    async def _poll(self) -> None:
        """Announces the news of users with events no notification announced (a listener
        reconnecting, a notification lost with its connection), and of feeds whose last
        read failed."""
        while True:
            await asyncio.sleep(self._settings.sse_poll_s)
            try:
                await self._poll_once()
            except Exception:
                _log.exception("event stream poll failed")

    async def _poll_once(self) -> None:
        for feed in self._feeds.values():
            if feed.stale:
                feed.announce()
        async with self._engine.connect() as connection:
            latest = int((await connection.execute(_LATEST)).scalar_one())
            users = sorted(self._feeds)
            if latest > self._polled_upto and users:
                news = await connection.execute(
                    _USERS_WITH_NEWS, {"after": self._polled_upto, "upto": latest, "users": users}
                )
                for (user_id,) in news:
                    self._announce(user_id)
        self._polled_upto = max(self._polled_upto, latest)
        self._seen(latest)

    async def close(self) -> None:
        if self._latest_reader is not None:
            self._tasks.append(self._latest_reader)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            await feed.close()
        if self._progress is not None:
            await asyncio.to_thread(self._progress.close)
            self._progress = None
        self._started = False
