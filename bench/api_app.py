"""The API as a uvicorn application factory, so that the benchmark can run several workers.

``genstream-api`` hands uvicorn an app object, which allows one process only; this factory
builds the same app (same settings, producer and engine) in each worker process, on the
benchmark's PostgreSQL schema (``BENCH_PG_SCHEMA``).
"""

from __future__ import annotations

import os
from typing import Any

from api.app import create_app
from api.events import stream_engine
from api.settings import ApiSettings
from genstream.db import async_engine
from genstream.logs import configure_logging
from producers import EventProducer

__all__ = ["create"]

Scope = dict[str, Any]
Receive = Any
Send = Any


class _ClosesProducer:
    """Closes the producer once the app has shut down, as ``genstream-api`` does."""

    def __init__(self, app: Any, producer: EventProducer) -> None:
        self._app = app
        self._producer = producer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self._app(scope, receive, send)
            return

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                self._producer.close()
            await send(message)

        await self._app(scope, receive, sending)


def create() -> Any:
    settings = ApiSettings()
    configure_logging("api", settings.log_level)
    producer = EventProducer(settings=settings.kafka, linger_ms=settings.jobs.send_linger_ms)
    schema = os.environ.get("BENCH_PG_SCHEMA") or None
    engine = async_engine(settings.pg, schema=schema)
    streams = stream_engine(settings, schema=schema)
    app = create_app(
        settings, engine=engine, stream_engine=streams, dispose_engine=True, producer=producer
    )
    return _ClosesProducer(app, producer)
