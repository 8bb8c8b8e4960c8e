"""When a starting worker may take its first job: once every tier has shown what waits on it.

The tier consumers join the group one after another, and once assigned, each fetches on its
own schedule. Starting on the first record that arrives would run a free job while a pro
backlog is still on its way, so the first start waits until every tier consumer has been
assigned and every partition it holds has delivered a record or reported its end. A grace
period bounds the wait, so a tier whose brokers are slow cannot keep the worker idle. Once
open, the gate stays open: partitions that move later are read while jobs run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

__all__ = ["StartupGate"]

Partition = tuple[str, int]


class StartupGate:
    def __init__(
        self,
        topics: Iterable[str],
        *,
        grace_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._waiting_topics = set(topics)
        self._unread: set[Partition] = set()
        self._grace_s = grace_s
        self._clock = clock
        self._deadline = clock() + grace_s
        self._opened_at: float | None = None

    def restart(self) -> None:
        """Starts the grace period now (the worker's loop begins)."""
        self._deadline = self._clock() + self._grace_s

    def assigned(self, topic: str, partitions: Iterable[Partition]) -> None:
        self._waiting_topics.discard(topic)
        if self._opened_at is None:
            self._unread.update(partitions)

    def revoked(self, partitions: Iterable[Partition]) -> None:
        self._unread.difference_update(partitions)

    def read(self, partition: Partition) -> None:
        """A record, or the end of the partition, arrived from ``partition``."""
        self._unread.discard(partition)

    @property
    def joined(self) -> bool:
        """Whether every tier consumer has had its first assignment."""
        return not self._waiting_topics

    @property
    def caught_up(self) -> bool:
        """Whether every tier has joined and every partition it holds has been read."""
        return self.joined and not self._unread

    @property
    def waited_s(self) -> float:
        """How long the gate has been (or was) closed since the grace period began."""
        end = self._opened_at if self._opened_at is not None else self._clock()
        return end - (self._deadline - self._grace_s)

    def is_open(self) -> bool:
        if self._opened_at is None and (self.caught_up or self._clock() >= self._deadline):
            self._opened_at = self._clock()
        return self._opened_at is not None
