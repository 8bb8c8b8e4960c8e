"""Entry point of the API service (``genstream-api``)."""

from __future__ import annotations

import uvicorn

from api.app import create_app
from api.events import stream_engine
from api.settings import ApiSettings
from genstream.db import async_engine
from genstream.logs import configure_logging
from producers import EventProducer


def main() -> None:
    settings = ApiSettings()
    configure_logging("api", settings.log_level)
    producer = EventProducer(settings=settings.kafka, linger_ms=settings.jobs.send_linger_ms)
    try:
        app = create_app(
            settings,
            engine=async_engine(settings.pg),
            stream_engine=stream_engine(settings),
            dispose_engine=True,
            producer=producer,
        )
        uvicorn.run(
            app,
            host=settings.api.host,
            port=settings.api.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=settings.reads.sse_shutdown_grace_s,
            # The one place X-Forwarded-For is read: uvicorn takes the client's address from
            # it only when a trusted proxy sent it (the last address not of a trusted proxy),
            # and the app limits by that address. With none trusted, uvicorn rewrites nothing
            # (its own default would believe any request from loopback).
            proxy_headers=bool(settings.api.trusted_proxies),
            forwarded_allow_ips=list(settings.api.trusted_proxies),
        )
    finally:
        # After the server's shutdown: requests in flight have had their acks by now.
        producer.close()
