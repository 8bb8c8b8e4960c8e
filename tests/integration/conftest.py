"""Integration fixtures: the real Kafka, PostgreSQL and S3 server started by infra/.

Each test gets its own topics, schema and key prefix and removes them afterwards. When the
stack is not running the tests fail with the command that starts it; they never fall back to
anything else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from contracts import TopicSpec, topic_by_name
from genstream.db import sync_engine, upgrade
from genstream.kafka import delete_topics, ensure_topics
from genstream.settings import StackSettings
from genstream.storage import S3Client, s3_client

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def stack() -> StackSettings:
    if not (ROOT / "var" / "stack.env").exists():
        pytest.fail("the stack is not running: start it with `make infra-up` (make test does)")
    return StackSettings()


@pytest.fixture
def make_topic(stack: StackSettings, unique: str) -> Iterator[object]:
    """Creates per-test copies of contract topics (same key and config, unique name)."""
    created: list[str] = []

    def make(name: str) -> TopicSpec:
        spec = topic_by_name(name).prefixed(f"test.{unique}.")
        ensure_topics(stack.kafka, [spec])
        created.append(spec.name)
        return spec

    yield make
    delete_topics(stack.kafka, created)


@pytest.fixture
def pg_schema(stack: StackSettings, unique: str) -> Iterator[tuple[Engine, str]]:
    """A fresh schema with every migration applied; dropped after the test."""
    schema = f"test_{unique}"
    upgrade(stack.pg, schema=schema)
    engine = sync_engine(stack.pg)
    try:
        yield engine, schema
    finally:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
async def s3(stack: StackSettings, unique: str) -> AsyncIterator[tuple[S3Client, str]]:
    """A client and a key prefix of this test's own; its objects are deleted afterwards."""
    prefix = f"tests/{unique}/"
    async with s3_client(stack.s3) as client:
        yield client, prefix
        listed = await client.list_objects_v2(Bucket=stack.s3.outputs_bucket, Prefix=prefix)
        keys = [{"Key": item["Key"]} for item in listed.get("Contents", [])]
        if keys:
            await client.delete_objects(Bucket=stack.s3.outputs_bucket, Delete={"Objects": keys})
