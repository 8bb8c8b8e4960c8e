"""The API in-process against the real stack: its own schema, its own secrets."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from api.settings import ApiSettings, AuthSettings, PaymentSettings
from contracts import TopicSpec
from genstream.db import async_engine
from genstream.settings import StackSettings
from tests.integration.api.sse import ApiProcess, Launch


@pytest.fixture
def api_settings(stack: StackSettings) -> ApiSettings:
    return ApiSettings(
        environment="test",
        auth=AuthSettings(jwt_secret=SecretStr(secrets.token_urlsafe(48)), signup_credits=100),
        payments=PaymentSettings(webhook_secret=SecretStr("whsec_" + secrets.token_urlsafe(24))),
        kafka=stack.kafka,
        pg=stack.pg,
        s3=stack.s3,
    )


@pytest.fixture
async def api_engine(
    api_settings: ApiSettings, pg_schema: tuple[Engine, str]
) -> AsyncIterator[AsyncEngine]:
    _, schema = pg_schema
    engine = async_engine(api_settings.pg, schema=schema)
    yield engine
    await engine.dispose()


@pytest.fixture
def api_app(api_settings: ApiSettings, api_engine: AsyncEngine) -> FastAPI:
    return create_app(api_settings, engine=api_engine)


@pytest.fixture
async def api(api_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API; requests come from 127.0.0.1."""
    transport = httpx.ASGITransport(app=api_app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://genstream.test") as client:
        yield client


@pytest.fixture
def progress_topic(make_topic: Callable[[str], TopicSpec]) -> TopicSpec:
    return make_topic("jobs.progress")


@pytest.fixture
def launch(
    api_settings: ApiSettings,
    pg_schema: tuple[Engine, str],
    progress_topic: TopicSpec,
    tmp_path: Path,
) -> Iterator[Launch]:
    """Starts API processes on the test's schema and topics; stops them afterwards."""
    started: list[ApiProcess] = []

    def start(count: int = 1, **reads: str) -> list[ApiProcess]:
        env = {
            "GENSTREAM_ENVIRONMENT": "test",
            "GENSTREAM_AUTH__JWT_SECRET": api_settings.auth.jwt_secret.get_secret_value(),
            "GENSTREAM_TEST_PG_SCHEMA": pg_schema[1],
            "GENSTREAM_READS__PROGRESS_TOPIC": progress_topic.name,
            "GENSTREAM_READS__SSE_HEARTBEAT_S": "1",
            "GENSTREAM_READS__SSE_POLL_S": "1",
            **{f"GENSTREAM_READS__{name.upper()}": value for name, value in reads.items()},
        }
        processes = [
            ApiProcess(env, tmp_path / f"api-{len(started) + n}.log") for n in range(count)
        ]
        started.extend(processes)
        return [process.wait_ready() for process in processes]

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def requested(make_topic: Callable[[str], TopicSpec]) -> TopicSpec:
    """The test's own copy of jobs.requested."""
    return make_topic("jobs.requested")


@pytest.fixture
async def jobs_client(
    api_settings: ApiSettings, api_engine: AsyncEngine, stack: StackSettings, requested: TopicSpec
) -> AsyncIterator[httpx.AsyncClient]:
    """The API in-process, writing jobs to ``requested``, with synthetic jobs switched on."""
    from tests.integration.api.test_jobs_submit import event_producer, jobs_api, jobs_settings

    settings = jobs_settings(api_settings, requested)
    async with (
        event_producer(stack.kafka) as producer,
        jobs_api(settings, api_engine, producer) as client,
    ):
        yield client
