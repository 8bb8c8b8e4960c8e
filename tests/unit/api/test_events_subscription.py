"""A stream's waits: news, quiet, its client going away, and writes cut short by overflow."""

from __future__ import annotations

import asyncio
from typing import Any

from api.events.lifecycle import LifecycleEvent
from api.events.subscription import Subscription
from contracts import Envelope, JobProgress


def _progress(job_id: str = "job_1", user_id: str = "u1") -> Envelope[Any]:
    data = JobProgress(job_id=job_id, attempt=1, percent=10.0, step=1, total_steps=10)
    return Envelope.wrap(data, user_id=user_id, source="genstream/tests")


def _stored(seq: int, job_id: str = "job_1") -> LifecycleEvent:
    return LifecycleEvent(seq=seq, job_id=job_id, terminal=False, frame=b"id: %d\n\n" % seq)


class _Connection:
    """An ASGI connection's wait for its end: ``close`` ends it."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    async def gone(self) -> None:
        await self.closed.wait()


async def test_a_fresh_stream_from_now_waits_until_quiet() -> None:
    subscription = Subscription(user_id="u1", job_id=None, capacity=10)
    assert await subscription.wait(0.01, _Connection().gone) == "quiet"


async def test_a_stored_event_or_progress_ends_the_wait_at_once() -> None:
    connection = _Connection()
    subscription = Subscription(user_id="u1", job_id=None, capacity=10)
    waiting = asyncio.create_task(subscription.wait(60, connection.gone))
    await asyncio.sleep(0)
    subscription.hand(_stored(7))
    assert await asyncio.wait_for(waiting, 5) == "news"
    assert [e.seq for e in subscription.take_lifecycle()] == [7]

    waiting = asyncio.create_task(subscription.wait(60, connection.gone))
    await asyncio.sleep(0)
    subscription.offer(_progress())
    assert await asyncio.wait_for(waiting, 5) == "news"
    assert len(subscription.take_progress()) == 1
    assert not subscription.has_news


async def test_news_before_the_wait_answers_without_waiting() -> None:
    subscription = Subscription(user_id="u1", job_id=None, capacity=10)
    subscription.hand(_stored(1))
    assert await subscription.wait(60, _Connection().gone) == "news"


async def test_the_client_going_away_ends_the_wait() -> None:
    connection = _Connection()
    subscription = Subscription(user_id="u1", job_id=None, capacity=10)
    waiting = asyncio.create_task(subscription.wait(60, connection.gone))
    await asyncio.sleep(0)
    connection.closed.set()
    assert await asyncio.wait_for(waiting, 5) == "gone"


async def test_a_one_job_stream_takes_only_its_job() -> None:
    subscription = Subscription(user_id="u1", job_id="job_1", capacity=10)
    subscription.offer(_progress("job_2"))
    assert not subscription.has_news
    subscription.hand(_stored(1, "job_2"))
    assert not subscription.has_news
    subscription.offer(_progress("job_1"))
    subscription.hand(_stored(2, "job_1"))
    assert [e.subject for e in subscription.take_progress()] == ["job_1"]
    assert [e.seq for e in subscription.take_lifecycle()] == [2]


async def test_stored_events_past_the_buffer_overflow_the_stream_too() -> None:
    subscription = Subscription(user_id="u1", job_id=None, capacity=2)
    subscription.offer(_progress())
    subscription.hand(_stored(1))
    subscription.hand(_stored(2))
    assert not subscription.overflowed
    subscription.hand(_stored(3))
    assert subscription.overflowed
    assert subscription.take_lifecycle() == []
    assert subscription.take_progress() == []
    subscription.hand(_stored(4))
    assert not subscription.has_news


async def test_an_overflow_cuts_a_blocked_write_short_and_progress_does_not() -> None:
    subscription = Subscription(user_id="u1", job_id=None, capacity=2)
    unblocked = asyncio.Event()
    sent: list[Any] = []

    async def send(message: Any) -> None:
        await unblocked.wait()
        sent.append(message)

    writing = asyncio.create_task(subscription.write(send, {"body": b"x"}))
    await asyncio.sleep(0)
    subscription.offer(_progress())
    subscription.offer(_progress())
    await asyncio.sleep(0)
    assert not writing.done(), "progress within the buffer leaves the write alone"
    subscription.offer(_progress())
    assert subscription.overflowed
    assert await asyncio.wait_for(writing, 5) is False
    assert sent == []
    assert subscription.take_progress() == []
    assert await subscription.write(send, {"body": b"y"}) is False


async def test_a_write_that_completes_answers_true() -> None:
    subscription = Subscription(user_id="u1", job_id=None, capacity=2)
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    assert await subscription.write(send, {"body": b"x"}) is True
    assert sent == [{"body": b"x"}]
