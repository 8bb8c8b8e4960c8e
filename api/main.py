"""Entry point of the API service (``genstream-api``)."""

from __future__ import annotations

import os

import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from api.events import stream_engine
from api.settings import ApiSettings
from contracts.catalog import CATALOG_ENV
from genstream.db import async_engine
from genstream.logs import configure_logging
from genstream.tracing import configure_tracing
from producers import EventProducer


def instrument(app: FastAPI, engine: AsyncEngine) -> None:
    """Spans for every request (an incoming ``traceparent`` is their parent, and answers
    carry a ``traceresponse``) and for the queries of ``engine``."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.propagators import (
        TraceResponsePropagator,
        set_global_response_propagator,
    )
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    set_global_response_propagator(TraceResponsePropagator())  # type: ignore[no-untyped-call]
    # Probes and scrapes are not worth a trace each.
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls="healthz,readyz,metrics", exclude_spans=["receive", "send"]
    )
    # Its declared range stops short of the SQLAlchemy in use; the engine events it hooks are
    # the same.
    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, skip_dep_check=True)


def main() -> None:
    settings = ApiSettings()
    if settings.catalog is not None:
        # The catalog is looked up where no settings object is at hand (contracts'
        # load_catalog reads GENSTREAM_CATALOG); a value from an env file is made visible.
        os.environ.setdefault(CATALOG_ENV, str(settings.catalog))
    configure_logging("api", settings.log_level)
    traced = configure_tracing("genstream-api")
    producer = EventProducer(settings=settings.kafka, linger_ms=settings.jobs.send_linger_ms)
    try:
        engine = async_engine(settings.pg)
        app = create_app(
            settings,
            engine=engine,
            stream_engine=stream_engine(settings),
            dispose_engine=True,
            producer=producer,
        )
        if traced:
            instrument(app, engine)
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
