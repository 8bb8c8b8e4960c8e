"""Acknowledges an agent's inputs only once the brokers hold what they caused, a batch at a time.

An agent handles each input as soon as it arrives and sends what it causes right away; its
inputs become committable only after the brokers have acknowledged every one of those sends.
Waiting for the brokers once per batch of inputs, beside the agent rather than in its way,
lets the producer carry the output of many inputs in each request, so one round trip no
longer costs one input, and a lone input's output leaves without waiting for company.

Batches are settled in order by a task of their own, not when the agent asks for its next
input: while Faust pauses a stream (a rebalance, a shutdown) the agent waits for an input
that does not come, and Faust waits for the inputs already handled to be acknowledged.

If a send fails, no input of its batch or of a later one is acknowledged: they are processed
again after a restart, which the processors' idempotent effects make safe, and the agent
raises the error when it takes its next input.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import faust
from faust.types import EventT

DEFAULT_BATCH = 2000
"""Inputs handled, at most, and not yet acknowledged: the agent waits beyond that."""
DEFAULT_LINGER_S = 0.1
"""How long a batch gathers inputs before it is settled, so that writes held back until its
end (an account several of its inputs changed) happen once. Outputs do not wait for it."""

_log = logging.getLogger(__name__)


class Acknowledger:
    """Iterates an agent's stream with acknowledgements held until the outputs are delivered.

    ``events()`` yields each input; while handling it the agent hands the delivery of every
    send it makes to ``caused``. A batch of handled inputs is settled by running
    ``on_batch_end`` (for writes held back until then), waiting for every delivery handed in
    so far, and acknowledging the inputs in the order they arrived.
    """

    def __init__(
        self,
        stream: faust.StreamT[Any],
        *,
        batch: int = DEFAULT_BATCH,
        linger_s: float = DEFAULT_LINGER_S,
        on_batch_end: Callable[[], None] | None = None,
    ) -> None:
        if batch < 1:
            raise ValueError("a batch holds at least one input")
        # Every agent's stream is a faust.Stream, the class that declares noack().
        self._stream = cast(faust.Stream[Any], stream).noack()
        self._batch = batch
        self._linger_s = linger_s
        self._on_batch_end = on_batch_end
        self._handled: list[EventT[Any]] = []
        self._deliveries: list[Awaitable[Any]] = []
        self._more = asyncio.Event()
        self._room = asyncio.Event()
        self._failure: BaseException | None = None

    def caused(self, delivery: Awaitable[Any]) -> None:
        """Holds the acknowledgement of the input being handled until ``delivery`` completes."""
        self._deliveries.append(delivery)

    async def events(self) -> AsyncIterator[EventT[Any]]:
        settling = asyncio.create_task(self._settle_batches())
        try:
            async for event in self._stream.events():
                if self._failure is not None:
                    raise self._failure
                yield event
                self._handled.append(event)
                self._more.set()
                while len(self._handled) >= self._batch and self._failure is None:
                    self._room.clear()
                    await self._room.wait()
        finally:
            settling.cancel()

    async def _settle_batches(self) -> None:
        while True:
            await self._more.wait()
            await asyncio.sleep(self._linger_s)
            self._more.clear()
            # Taken together, with no await between: every input of the batch has had its
            # held-back writes made and handed in the deliveries it has caused so far.
            if self._on_batch_end is not None:
                self._on_batch_end()
            handled, self._handled = self._handled, []
            deliveries, self._deliveries = self._deliveries, []
            self._room.set()
            try:
                await asyncio.gather(*deliveries)
            except Exception as error:
                _log.exception("a send failed; its inputs stay unacknowledged")
                self._failure = error
                self._room.set()
                return
            for event in handled:
                await self._stream.ack(event)
