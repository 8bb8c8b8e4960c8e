"""Makes Faust seek a worker's input partitions before it resumes fetching them.

After a rebalance, faust-streaming's recovery resumes the stream partitions and only then
seeks them to their committed offsets (faust-streaming issues #216 and #606). Records
fetched in between, from wherever the client stood, make the consumer record the offsets
up to them as a "gap" that counts as acknowledged, and drop the records it then re-reads
from the committed offset as already seen: after a worker is killed, its successor could
commit offsets of commands it never processed. Deferring the resume until the recovery
step that seeks has finished closes that window.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from faust.tables.recovery import Recovery

_INSTALLED = "_genstream_seek_before_resume"

RecoveryStep = Callable[..., Awaitable[Any]]


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


def install() -> None:
    """Patches Faust's recovery once per process."""
    if getattr(Recovery, _INSTALLED, False):
        return
    patched: Any = Recovery
    patched._resume_streams = _seek_before_resume(Recovery._resume_streams)
    patched.on_recovery_completed = _seek_before_resume(Recovery.on_recovery_completed)
    setattr(Recovery, _INSTALLED, True)
