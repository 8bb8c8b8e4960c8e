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
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, Literal

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.events.progress_feed import ProgressFeed
from api.pg_listener import listen
from api.read_settings import ReadSettings
from contracts import Envelope
from genstream.db.read_model import JOB_EVENTS_CHANNEL
from genstream.kafka import KafkaSettings

__all__ = ["EventHub", "Gone", "Subscription", "Wake"]

_log = logging.getLogger(__name__)

_Message = MutableMapping[str, Any]
_LATEST = text("SELECT coalesce(max(seq), 0) FROM job_events")
_USERS_WITH_NEWS = text(
    "SELECT DISTINCT user_id FROM job_events"
    " WHERE seq > :after AND seq <= :upto AND user_id IN :users"
).bindparams(bindparam("users", expanding=True))


Wake = Literal["news", "quiet", "gone"]
Gone = Callable[[], Awaitable[object]]
"""Waits on a client's connection: returns when the client goes away."""


class Subscription:
    """One open stream: a user's jobs, or one job of theirs.

    The stream's task does all its waiting here, and only here: for news, for its client to
    go away, for a write to a slow client. Each wait is an ``asyncio.timeout`` the hub pulls
    forward to wake it, so an open stream costs no task, queue or event of its own besides
    the server's task of its request.
    """

    __slots__ = (
        "_alarm",
        "_alarm_on_news",
        "_capacity",
        "_lifecycle_due",
        "_progress",
        "job_id",
        "overflowed",
        "user_id",
    )

    def __init__(
        self, *, user_id: str, job_id: str | None, capacity: int, lifecycle_due: bool = True
    ) -> None:
        self.user_id = user_id
        self.job_id = job_id
        self.overflowed = False
        """The client fell behind by more than the buffer holds."""
        self._capacity = capacity
        # Made on the first progress event: most streams spend most of their life idle.
        self._progress: deque[Envelope[Any]] | None = None
        self._lifecycle_due = lifecycle_due
        self._alarm: asyncio.Timeout | None = None
        self._alarm_on_news = False

    @property
    def has_news(self) -> bool:
        """There may be something to send."""
        return self._lifecycle_due or bool(self._progress)

    def wake(self) -> None:
        self._lifecycle_due = True
        self._interrupt(news=True)

    def offer(self, envelope: Envelope[Any]) -> None:
        """Buffers a progress event of the user's; never blocks the caller."""
        if self.job_id is not None and envelope.subject != self.job_id:
            return
        if self.overflowed:
            return
        if self._progress is None:
            self._progress = deque()
        if len(self._progress) >= self._capacity:
            self._progress = None
            self.overflowed = True
            self._interrupt(news=False)
            return
        self._progress.append(envelope)
        self._interrupt(news=True)

    def take_lifecycle_due(self) -> bool:
        due, self._lifecycle_due = self._lifecycle_due, False
        return due

    def take_progress(self) -> list[Envelope[Any]]:
        if not self._progress:
            return []
        taken = list(self._progress)
        # Dropped, not cleared: an empty deque still holds a block of 64 slots.
        self._progress = None
        return taken

    async def wait(self, timeout_s: float, gone: Gone) -> Wake:
        """Until there may be something to send (or the client overflowed), ``"news"``;
        ``timeout_s`` passing first, ``"quiet"``; ``gone`` returning first, ``"gone"``."""
        if self.has_news or self.overflowed:
            return "news"
        try:
            async with asyncio.timeout(timeout_s) as alarm:
                self._alarm, self._alarm_on_news = alarm, True
                await gone()
        except TimeoutError:
            return "news" if self.has_news or self.overflowed else "quiet"
        finally:
            self._alarm = None
        return "gone"

    async def write(self, send: Callable[[_Message], Awaitable[None]], message: _Message) -> bool:
        """``send(message)``, given up if the client overflows meanwhile (``False``): a client
        that stopped reading would otherwise hold the write until its socket buffers fill."""
        if self.overflowed:
            return False
        try:
            async with asyncio.timeout(None) as alarm:
                self._alarm, self._alarm_on_news = alarm, False
                await send(message)
        except TimeoutError:
            if self.overflowed:
                return False
            raise
        finally:
            self._alarm = None
        return True

    def _interrupt(self, *, news: bool) -> None:
        alarm = self._alarm
        if alarm is not None and (self._alarm_on_news or not news) and not alarm.expired():
            # A deadline long past: the alarm goes off at the loop's next turn.
            alarm.reschedule(0)


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
        self._latest_waiting: list[asyncio.Future[int]] = []
        self._latest_reader: asyncio.Task[None] | None = None

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

    def subscribe(
        self, *, user_id: str, job_id: str | None, lifecycle_due: bool = True
    ) -> Subscription:
        """``lifecycle_due=False`` for a stream that starts at a position read after this
        call: an event committed after that read is announced to it, and one before it is
        not its to send, so it need not read before the first announcement."""
        subscription = Subscription(
            user_id=user_id,
            job_id=job_id,
            capacity=self._settings.sse_client_buffer,
            lifecycle_due=lifecycle_due,
        )
        self._by_user.setdefault(user_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscriptions = self._by_user.get(subscription.user_id)
        if subscriptions is not None:
            subscriptions.discard(subscription)
            if not subscriptions:
                del self._by_user[subscription.user_id]

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
                for waiting in batch:
                    if not waiting.done():
                        waiting.set_result(latest)
        finally:
            self._latest_reader = None
            # Cancelled at shutdown: nobody is left to read for its callers.
            for waiting in (*batch, *self._latest_waiting):
                waiting.cancel()

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
        if self._latest_reader is not None:
            self._tasks.append(self._latest_reader)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._feed is not None:
            await asyncio.to_thread(self._feed.close)
            self._feed = None
        self._started = False
