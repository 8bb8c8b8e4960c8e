"""One user's stored events for this process's streams of that user.

When the user's events are announced (a ``NOTIFY``, the poll), the feed reads what was
stored after its position, once, frames each event once (its download links signed once),
and hands the same frames to every stream of the user. However many streams the user
holds, an event costs one read and one signing per process.

A stream that joins later than some event it must send (one resuming from an id, one job's
stream replaying the job) reads the events up to its joining itself, once; from then on the
feed hands it everything after, and it skips what it had already sent.
"""

from __future__ import annotations

import asyncio
import logging

from api.events.lifecycle import PAGE, LifecycleReader
from api.events.subscription import Subscription

__all__ = ["UserFeed"]

_log = logging.getLogger(__name__)


class UserFeed:
    def __init__(self, *, user_id: str, after: int, reader: LifecycleReader) -> None:
        """``after``: a ``seq`` read from ``job_events`` before the feed was made; the feed
        reads everything stored after it, at its first ``announce``."""
        self.user_id = user_id
        self.subscriptions: set[Subscription] = set()
        self.stale = False
        """A read failed: what it was to read is still to be read (the poll announces it)."""
        self._upto = after
        self._reader = reader
        self._due = False
        self._task: asyncio.Task[None] | None = None

    def join(self, subscription: Subscription) -> None:
        subscription.handed_after = self._upto
        self.subscriptions.add(subscription)

    def announce(self) -> None:
        """Events of the user may have been stored: read them, unless a read that starts
        after this call is already due. Returns at once."""
        self._due = True
        if self._task is None:
            self._task = asyncio.create_task(self._read(), name=f"user-feed-{self.user_id}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _read(self) -> None:
        try:
            # Announcements during a read make one more read after it, whatever their number.
            while self._due and self.subscriptions:
                self._due = False
                try:
                    await self._read_news()
                except Exception:
                    self.stale = True
                    _log.exception("reading the news of event streams failed")
                    return
                self.stale = False
        finally:
            self._task = None

    async def _read_news(self) -> None:
        while True:
            events = await self._reader.after(
                user_id=self.user_id, job_id=None, seq=self._upto, reading="news"
            )
            if events:
                self._upto = events[-1].seq
            # A stream that joined during the read gets these too: they may be after the
            # position it joined at, and it skips those it already has.
            for subscription in self.subscriptions:
                for event in events:
                    subscription.hand(event)
            if len(events) < PAGE:
                return
