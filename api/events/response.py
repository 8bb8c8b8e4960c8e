"""The ASGI response of an event stream, which ends when the stream ends, when the client
goes away, or when the client falls too far behind.

A response of Starlette's own would keep writing to a client that stopped reading until
that client's socket buffers fill, and then wait for it. Here a watcher ends the response
as soon as the client's progress buffer overflows, even while a write is waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from typing import Final

from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from api.events.metrics import OPEN_STREAMS, OVERFLOWS

__all__ = ["EventStreamResponse"]

_HEADERS: Final = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_LAST_WRITE_S: Final = 1.0


class EventStreamResponse(StreamingResponse):
    def __init__(
        self,
        chunks: AsyncGenerator[bytes, None],
        *,
        overflowed: asyncio.Event,
        on_close: Callable[[], None],
    ) -> None:
        super().__init__(chunks, media_type="text/event-stream", headers=_HEADERS)
        self._chunks = chunks
        self._overflowed = overflowed
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        OPEN_STREAMS.inc()
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            pump = asyncio.create_task(self._pump(send))
            watch = asyncio.create_task(self._watch(receive))
            try:
                await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (pump, watch):
                    task.cancel()
                await asyncio.gather(pump, watch, return_exceptions=True)
                await self._chunks.aclose()
            if pump.done() and not pump.cancelled() and pump.exception() is None:
                return
            if self._overflowed.is_set():
                OVERFLOWS.inc()
                # Ends the response if the connection still takes bytes; otherwise the
                # server closes the connection once the client reads what it was sent.
                with contextlib.suppress(TimeoutError, OSError):
                    await asyncio.wait_for(
                        send({"type": "http.response.body", "body": b"", "more_body": False}),
                        _LAST_WRITE_S,
                    )
            elif pump.done() and not pump.cancelled() and (error := pump.exception()):
                raise error
        finally:
            OPEN_STREAMS.dec()
            self._on_close()

    async def _pump(self, send: Send) -> None:
        async for chunk in self._chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _watch(self, receive: Receive) -> None:
        """Returns when the client disconnects or overflows its buffer."""
        overflow = asyncio.create_task(self._overflowed.wait())
        message: asyncio.Task[Message] | None = None
        try:
            while not overflow.done():
                message = asyncio.ensure_future(receive())
                await asyncio.wait({message, overflow}, return_when=asyncio.FIRST_COMPLETED)
                if message.done() and message.result()["type"] == "http.disconnect":
                    return
        finally:
            for task in (overflow, message):
                if task is not None:
                    task.cancel()
