"""The ASGI response of an event stream, which ends when the stream ends, when the client
goes away, or when the client falls too far behind.

Everything a stream does runs in the server's task of its request: the stream waits on the
client's connection, which the server answers when the client goes away, for as long as it
has nothing to send. A response of Starlette's own would start two more tasks a stream,
and keep writing to a client that stopped reading until that client's socket buffers
fill; here a write ends as soon as the client's progress buffer overflows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from typing import Final

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.events.metrics import OPEN_STREAMS, OVERFLOWS
from api.events.subscription import Gone, Subscription

__all__ = ["EventStreamResponse"]

_RAW_HEADERS: Final = (
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
    (b"content-type", b"text/event-stream; charset=utf-8"),
)
_LAST_WRITE_S: Final = 1.0


async def _until_gone(receive: Receive) -> None:
    # The request's body (none, for a GET) comes first; then the server answers only when
    # the connection ends.
    while (await receive())["type"] != "http.disconnect":
        pass


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        stream: Callable[[Gone], AsyncGenerator[bytes, None]],
        *,
        subscription: Subscription,
        on_close: Callable[[], None],
    ) -> None:
        """``stream(gone)`` makes the stream's bytes; ``gone()`` returns when the client
        goes away."""
        # No body, so no Content-Length: Response's own __init__ would give it one of 0.
        self.status_code = 200
        self.background = None
        self.raw_headers = list(_RAW_HEADERS)
        self._stream = stream
        self._subscription = subscription
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        OPEN_STREAMS.inc()
        chunks = self._stream(lambda: _until_gone(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for chunk in chunks:
                message = {"type": "http.response.body", "body": chunk, "more_body": True}
                if not await self._subscription.write(send, message):
                    break
            if not self._subscription.overflowed:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            OVERFLOWS.inc()
            # Ends the response if the connection still takes bytes; otherwise the server
            # closes the connection once the client reads what it was sent.
            with contextlib.suppress(TimeoutError, OSError):
                async with asyncio.timeout(_LAST_WRITE_S):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await chunks.aclose()
            OPEN_STREAMS.dec()
            self._on_close()
