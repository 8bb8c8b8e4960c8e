"""Group commit: concurrent requests' writes go to the database together, one statement each.

A caller hands in one item and waits for its own outcome. Items that arrive while every
flush slot is busy wait for the next flush and go in it together, so under load one round
trip serves many requests, and when the load is light each item is flushed at once, alone:
nothing ever waits for a batch to fill.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalescer", "Flush"]

T = TypeVar("T")
R = TypeVar("R")

Flush = Callable[[Sequence[T]], Awaitable[Sequence[R | Exception]]]
"""Writes a batch; returns each item's result, or the exception that item alone failed with.
An exception it raises fails every item of the batch."""


class Coalescer(Generic[T, R]):
    """Runs ``flush`` over whatever has queued up, at most ``concurrency`` flushes at a time."""

    def __init__(self, flush: Flush[T, R], *, max_batch: int, concurrency: int) -> None:
        if max_batch < 1 or concurrency < 1:
            raise ValueError("max_batch and concurrency must be at least 1")
        self._flush = flush
        self._max_batch = max_batch
        self._concurrency = concurrency
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._draining = 0
        """Flushers between their start and the moment they find the queue empty; counted
        apart from ``_flushers``, whose tasks leave the set a loop turn after they end."""
        self._flushers: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """``item``'s result once its batch is written; raises what failed it.

        A caller that is cancelled while waiting does not take its item back: the batch it is
        in may already be written.
        """
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._draining < self._concurrency:
            self._draining += 1
            flusher = asyncio.create_task(self._drain())
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        return await future

    async def wait_idle(self) -> None:
        """Returns once every item handed in so far is written (or has failed)."""
        while self._flushers:
            await asyncio.gather(*self._flushers, return_exceptions=True)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._write(batch)
        finally:
            # No await between the empty queue and this: a submit either saw this flusher
            # counted and left its item to it, or starts a flusher of its own.
            self._draining -= 1

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            outcomes = await self._flush([item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for a batch of {len(batch)}")
        except Exception as error:  # handed to every caller of the batch
            for _, future in batch:
                _settle(future, error)
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _settle(future, outcome)


def _settle(future: asyncio.Future[R], outcome: R | Exception) -> None:
    if future.done():  # its caller was cancelled
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
