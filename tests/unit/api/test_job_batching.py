"""Group commit: callers' items share flushes under load, each gets its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from api.jobs.batching import Coalescer


async def started(writer: Writer, batches: int) -> None:
    """Returns once ``writer`` has been handed ``batches`` batches."""
    for _ in range(100):
        if len(writer.batches) >= batches:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{len(writer.batches)} batches, not {batches}")


class Writer:
    """A flush that waits for ``release`` and records the batches it was given."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.running = 0
        self.most_running = 0

    async def __call__(self, items: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        await self.release.wait()
        self.running -= 1
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


async def test_a_lone_item_is_flushed_at_once() -> None:
    writer = Writer()
    writer.release.set()
    coalescer = Coalescer[int, int](writer, max_batch=100, concurrency=2)
    assert await coalescer.submit(2) == 20
    assert writer.batches == [[2]]


async def test_items_that_arrive_while_flushes_run_go_together() -> None:
    writer = Writer()
    coalescer = Coalescer[int, int](writer, max_batch=100, concurrency=1)
    first = asyncio.create_task(coalescer.submit(0))
    await started(writer, 1)
    later = [asyncio.create_task(coalescer.submit(i * 2)) for i in range(1, 6)]
    await asyncio.sleep(0)
    writer.release.set()
    assert await asyncio.gather(first, *later) == [0, 20, 40, 60, 80, 100]
    assert writer.batches == [[0], [2, 4, 6, 8, 10]]


async def test_batches_and_flushes_are_bounded() -> None:
    writer = Writer()
    coalescer = Coalescer[int, int](writer, max_batch=3, concurrency=2)
    submitted = [asyncio.create_task(coalescer.submit(i * 2)) for i in range(10)]
    await started(writer, 2)
    writer.release.set()
    await asyncio.gather(*submitted)
    assert writer.most_running == 2
    assert max(len(batch) for batch in writer.batches) == 3
    assert sorted(i for batch in writer.batches for i in batch) == [i * 2 for i in range(10)]


async def test_an_item_fails_alone_and_a_failed_flush_fails_its_batch() -> None:
    writer = Writer()
    writer.release.set()
    coalescer = Coalescer[int, int](writer, max_batch=100, concurrency=1)
    with pytest.raises(ValueError, match="odd 3"):
        await coalescer.submit(3)

    async def down(items: Sequence[int]) -> list[int | Exception]:
        raise ConnectionError("database gone")

    broken = Coalescer[int, int](down, max_batch=100, concurrency=1)
    outcomes = await asyncio.gather(*(broken.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)
    # Nothing is left behind: a later item gets a flush of its own.
    assert await coalescer.submit(4) == 40


async def test_a_cancelled_caller_leaves_the_others_their_results() -> None:
    writer = Writer()
    coalescer = Coalescer[int, int](writer, max_batch=100, concurrency=1)
    first = asyncio.create_task(coalescer.submit(0))
    await started(writer, 1)
    second = asyncio.create_task(coalescer.submit(2))
    third = asyncio.create_task(coalescer.submit(4))
    await asyncio.sleep(0)
    second.cancel()
    writer.release.set()
    assert (await first, await third) == (0, 40)
    await coalescer.wait_idle()
    assert writer.batches == [[0], [2, 4]]
