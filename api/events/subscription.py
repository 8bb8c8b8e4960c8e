"""One open stream's side of the fan-out: what was handed to it, and its waits.

The hub hands a stream its user's lifecycle events as they are read (once for all the
user's streams) and its progress as it arrives. Both are held in bounded buffers; a stream
that lets either overflow is closed, and its client resumes from its last id.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal, TypeVar

from api.events.lifecycle import LifecycleEvent
from contracts import Envelope

__all__ = ["Gone", "Subscription", "Wake"]

_Message = MutableMapping[str, Any]
_Item = TypeVar("_Item")

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
        "_lifecycle",
        "_progress",
        "handed_after",
        "job_id",
        "overflowed",
        "user_id",
    )

    def __init__(self, *, user_id: str, job_id: str | None, capacity: int) -> None:
        self.user_id = user_id
        self.job_id = job_id
        self.overflowed = False
        """The client fell behind by more than a buffer holds."""
        self.handed_after = 0
        """Every stored event of the user after this ``seq`` is handed to the stream (the
        hub sets it when the stream joins); one at or before it, the stream reads itself."""
        self._capacity = capacity
        # Made on the first event: most streams spend most of their life idle.
        self._lifecycle: deque[LifecycleEvent] | None = None
        self._progress: deque[Envelope[Any]] | None = None
        self._alarm: asyncio.Timeout | None = None
        self._alarm_on_news = False

    @property
    def has_news(self) -> bool:
        """There is something to send."""
        return bool(self._lifecycle) or bool(self._progress)

    def hand(self, event: LifecycleEvent) -> None:
        """Buffers a stored event of the user's; never blocks the caller."""
        if self.job_id is None or event.job_id == self.job_id:
            self._lifecycle = self._buffered(self._lifecycle, event)

    def offer(self, envelope: Envelope[Any]) -> None:
        """Buffers a progress event of the user's; never blocks the caller."""
        if self.job_id is None or envelope.subject == self.job_id:
            self._progress = self._buffered(self._progress, envelope)

    def take_lifecycle(self) -> list[LifecycleEvent]:
        taken, self._lifecycle = _taken(self._lifecycle)
        return taken

    def take_progress(self) -> list[Envelope[Any]]:
        taken, self._progress = _taken(self._progress)
        return taken

    async def wait(self, timeout_s: float, gone: Gone) -> Wake:
        """Until there is something to send (or the client overflowed), ``"news"``;
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

    def _buffered(self, buffer: deque[_Item] | None, item: _Item) -> deque[_Item] | None:
        if self.overflowed:
            return None
        if buffer is None:
            buffer = deque()
        if len(buffer) >= self._capacity:
            self.overflowed = True
            self._lifecycle = self._progress = None
            self._interrupt(news=False)
            return None
        buffer.append(item)
        self._interrupt(news=True)
        return buffer

    def _interrupt(self, *, news: bool) -> None:
        alarm = self._alarm
        if alarm is not None and (self._alarm_on_news or not news) and not alarm.expired():
            # A deadline long past: the alarm goes off at the loop's next turn.
            alarm.reschedule(0)


def _taken(buffer: deque[_Item] | None) -> tuple[list[_Item], None]:
    # Dropped, not cleared: an empty deque still holds a block of 64 slots.
    return (list(buffer) if buffer else []), None
