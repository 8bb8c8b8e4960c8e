"""The FastAPI application factory: collaborators are passed in, so tests build their own."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from api.auth.key_cache import ApiKeyCache
from api.auth.key_revocations import watch_revocations
from api.body_limit import BodyLimitMiddleware
from api.cors import install_cors
from api.events import EventHub, download_links
from api.health import router as health_router
from api.jobs.recorder import JobRecorder
from api.jobs.waiting import JobWaiters
from api.metrics import MetricsMiddleware
from api.metrics import router as metrics_router
from api.problems import install_problem_handlers
from api.ratelimit import RateLimiter
from api.routers import ROUTERS
from api.settings import ApiSettings
from api.web_app import mount_web_app
from producers import EventProducer


def create_app(
    settings: ApiSettings,
    *,
    engine: AsyncEngine,
    stream_engine: AsyncEngine | None = None,
    dispose_engine: bool = False,
    producer: EventProducer | None = None,
) -> FastAPI:
    """Builds the API around ``engine``; ``dispose_engine`` closes the engines on shutdown.

    ``stream_engine``, with a small pool of its own (``reads.sse_pool_size``), is what event
    streams read with, so that they never take the connections other requests need; an app
    built without one (tests that open no stream) streams with ``engine``.
    ``producer`` writes job submissions and cancellations; without one those answer 503.
    Its owner closes it.
    """

    streams = stream_engine or engine
    event_hub = EventHub(
        engine=streams,
        kafka=settings.kafka,
        settings=settings.reads,
        links=download_links(settings),
    )
    api_key_cache = ApiKeyCache(
        ttl_s=settings.auth.api_key_cache_s, max_entries=settings.auth.api_key_cache_size
    )
    recorder = JobRecorder(
        engine=engine,
        max_batch=settings.jobs.write_batch_max,
        concurrency=settings.jobs.write_concurrency,
    )

    waiters = JobWaiters(
        engine=engine, capacity=settings.jobs.wait_capacity, poll_s=settings.jobs.wait_poll_s
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Everything alive once the app is built (modules, models, schemas: most of the
        # heap) lives as long as the process; frozen, the collector stops scanning it over
        # and over while requests allocate.
        gc.collect()
        gc.freeze()
        watcher = None
        if settings.auth.api_key_cache_s > 0:
            conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            watcher = asyncio.create_task(
                watch_revocations(conninfo, api_key_cache), name="api-key-revocations"
            )
        yield
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        await recorder.close()
        await waiters.close()
        await event_hub.close()
        if dispose_engine:
            await engine.dispose()
            if streams is not engine:
                await streams.dispose()

    app = FastAPI(
        title="genstream",
        version="0.1.0",
        description="Paid AI media generation on Kafka: submit jobs, watch them, fetch outputs.",
        lifespan=lifespan,
        # Off, the document and its pages are not routes at all: their paths answer 404.
        openapi_url="/openapi.json" if settings.docs_served else None,
        docs_url="/docs" if settings.docs_served else None,
        redoc_url="/redoc" if settings.docs_served else None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.producer = producer
    app.state.event_hub = event_hub
    app.state.sessions = async_sessionmaker(engine, expire_on_commit=False)
    app.state.stream_sessions = async_sessionmaker(streams, expire_on_commit=False)
    app.state.rate_limiter = RateLimiter(engine=engine)
    app.state.job_recorder = recorder
    app.state.job_waiters = waiters
    app.state.api_key_cache = api_key_cache
    install_problem_handlers(app)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api.max_body_bytes)
    app.include_router(health_router)
    app.include_router(metrics_router)
    mount_web_app(app, settings)
    install_cors(app, settings.api.cors_origins)
    for router in ROUTERS:
        app.include_router(router)
    return app
