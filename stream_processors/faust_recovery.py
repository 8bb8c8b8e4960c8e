"""Makes Faust seek a worker's input partitions before it resumes fetching them.

After a rebalance, faust-streaming's recovery resumes the stream partitions and only then
seeks them to their committed offsets (faust-streaming issues #216 and #606). Records
fetched in between, from wherever the client stood, make the consumer record the offsets
up to them as a "gap" that counts as acknowledged, and drop the records it then re-reads
from the committed offset as already seen: after a worker is killed, its successor could
commit offsets of commands it never processed. Deferring the resume until the recovery
step that seeks has finished closes that window.

Deferring it makes another window fatal, which the second patch closes. Faust never
pauses partitions in aiokafka, which keeps fetching every assigned partition: Faust's
fetcher asks it for the records of the active partitions only, passing its live set,
which the consumer thread reads while it waits for records, and aiokafka reads an empty
set as every partition. From the end of a changelog restore (which pauses the changelog
partitions) to the deferred resume, that set is empty while the fetcher runs, and that
stretch now contains the seek: a fetch waiting across it returns the input partitions'
records from their committed offsets, Faust drops them as not active, and aiokafka's
positions have moved past them. The worker reports ready and never processes them, and
its committed offsets stay where its predecessor left them. So aiokafka is given a view
of the set that stays live but, empty, selects no partition.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Set
from typing import Any

from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

_INSTALLED = "_genstream_seek_before_resume"

RecoveryStep = Callable[..., Awaitable[Any]]
FetchRecords = Callable[..., Awaitable[Any]]


def _seek_before_resume(step: RecoveryStep) -> RecoveryStep:
    @functools.wraps(step)
    async def wrapper(self: Recovery, *args: Any, **kwargs: Any) -> Any:
        consumer: Any = self.app.consumer
        if "resume_partitions" in vars(consumer):
            # An enclosing recovery step is already deferring; it resumes at its end.
            return await step(self, *args, **kwargs)
        resume = consumer.resume_partitions
        deferred: list[Any] = []
        consumer.resume_partitions = deferred.append
        try:
            return await step(self, *args, **kwargs)
        finally:
            del consumer.resume_partitions
            for partitions in deferred:
                resume(partitions)

    return wrapper


class _ActivePartitions:
    """Faust's live set of active partitions, as a filter under which none means none.

    Live rather than a copy, so a partition Faust pauses while the fetch waits stops being
    handed out, as with the set itself.
    """

    __slots__ = ("_live",)

    def __init__(self, live: Set[Any]) -> None:
        self._live = live

    def __bool__(self) -> bool:
        return True

    def __contains__(self, tp: object) -> bool:
        return tp in self._live


def _none_active_fetches_none(fetch: FetchRecords) -> FetchRecords:
    @functools.wraps(fetch)
    async def wrapper(
        self: AIOKafkaConsumerThread,
        consumer: Any,
        active_partitions: Set[Any] | None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        # None (a client-only app) does mean every partition.
        selected = None if active_partitions is None else _ActivePartitions(active_partitions)
        return await fetch(self, consumer, selected, *args, **kwargs)

    return wrapper


def install() -> None:
    """Patches Faust's recovery and fetcher once per process."""
    if getattr(Recovery, _INSTALLED, False):
        return
    patched: Any = Recovery
    patched._resume_streams = _seek_before_resume(Recovery._resume_streams)
    patched.on_recovery_completed = _seek_before_resume(Recovery.on_recovery_completed)
    thread: Any = AIOKafkaConsumerThread
    thread._fetch_records = _none_active_fetches_none(AIOKafkaConsumerThread._fetch_records)
    setattr(Recovery, _INSTALLED, True)
