"""Jobs read ahead from a workload's tier topics, waiting for the scheduler to pick them.

Per tier, first in first out; a partition's jobs stay in offset order, so committing a
partition up to a finished job never skips one still waiting. The owner pauses a partition
once ``limit`` of its jobs wait here and resumes it when fewer do.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from contracts import Tier

__all__ = ["Buffered", "DispatchBuffers"]

Partition = tuple[str, int]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Buffered(Generic[T]):
    tier: Tier
    topic: str
    partition: int
    offset: int
    item: T


class DispatchBuffers(Generic[T]):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._queues: dict[Tier, deque[Buffered[T]]] = {tier: deque() for tier in Tier}
        self._counts: dict[Partition, int] = {}

    def add(self, entry: Buffered[T]) -> bool:
        """Keeps ``entry``; True when its partition has reached the limit and should pause."""
        self._queues[entry.tier].append(entry)
        key = (entry.topic, entry.partition)
        self._counts[key] = self._counts.get(key, 0) + 1
        return self._counts[key] >= self.limit

    def waiting(self) -> dict[Tier, int]:
        return {tier: len(queue) for tier, queue in self._queues.items()}

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def take(self, tier: Tier) -> Buffered[T]:
        entry = self._queues[tier].popleft()
        self._forget(entry)
        return entry

    def take_heads(self, match: Callable[[Buffered[T]], bool], limit: int) -> list[Buffered[T]]:
        """Up to ``limit`` matching jobs, each the oldest waiting of its partition, so that
        committing them never passes a job of theirs still waiting; pro first."""
        taken: list[Buffered[T]] = []
        for tier in Tier:
            queue = self._queues[tier]
            seen: set[Partition] = set()
            for entry in list(queue):
                if len(taken) >= limit:
                    break
                key = (entry.topic, entry.partition)
                if key in seen:
                    continue
                seen.add(key)
                if match(entry):
                    queue.remove(entry)
                    self._forget(entry)
                    taken.append(entry)
        return taken

    def count(self, topic: str, partition: int) -> int:
        return self._counts.get((topic, partition), 0)

    def drop(self, partitions: Iterable[Partition]) -> int:
        """Forgets the jobs of partitions this worker no longer owns; returns how many."""
        gone = set(partitions)
        dropped = 0
        for tier, queue in self._queues.items():
            kept = deque(e for e in queue if (e.topic, e.partition) not in gone)
            dropped += len(queue) - len(kept)
            self._queues[tier] = kept
        for key in gone:
            self._counts.pop(key, None)
        return dropped

    def _forget(self, entry: Buffered[T]) -> None:
        key = (entry.topic, entry.partition)
        left = self._counts.get(key, 0) - 1
        if left > 0:
            self._counts[key] = left
        else:
            self._counts.pop(key, None)
