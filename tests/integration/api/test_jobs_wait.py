"""``Prefer: wait`` on POST /v1/jobs: the answer waits for the job's end in the read model.

Two apps on one database stand for two API processes: neither knows what the other took,
and each learns of a job's end only as every process does, from the projection's writes
(PostgreSQL ``NOTIFY``). The poll that backs notifications up is set far beyond the waits,
so an answer that comes in time came from a notification.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from api.app import create_app
from api.settings import ApiSettings
from contracts import TopicSpec
from genstream.db import sync_engine
from genstream.db.models import Job
from genstream.settings import StackSettings
from tests.integration.api.accounts import app_client
from tests.integration.api.lifecycle import Story, granted, project
from tests.integration.api.test_jobs_submit import (
    SYNTHETIC,
    event_producer,
    jobs_settings,
    sign_up,
)

_DEADLINE_S = 20.0


@pytest.fixture
def schema_engine(stack: StackSettings, pg_schema: tuple[Engine, str]) -> Iterator[Engine]:
    engine = sync_engine(stack.pg, schema=pg_schema[1])
    yield engine
    engine.dispose()


@dataclass(frozen=True, slots=True)
class Served:
    client: httpx.AsyncClient
    app: FastAPI


@pytest.fixture
async def apps(
    api_settings: ApiSettings,
    api_engine: AsyncEngine,
    requested: TopicSpec,
    stack: StackSettings,
    request: pytest.FixtureRequest,
) -> AsyncIterator[list[Served]]:
    options: dict[str, Any] = {"wait_poll_s": 60.0, **getattr(request, "param", {})}
    settings = jobs_settings(api_settings, requested, **options)
    async with AsyncExitStack() as contexts:
        producer = await contexts.enter_async_context(event_producer(stack.kafka))
        served = []
        for _ in range(2):
            app = create_app(settings, engine=api_engine, producer=producer)
            served.append(Served(await contexts.enter_async_context(app_client(app)), app))
        yield served


def _job_of(engine: Engine, key: str) -> str:
    """The id of the job the request with ``key`` made, once its row is there."""
    deadline = time.monotonic() + _DEADLINE_S
    while time.monotonic() < deadline:
        with Session(engine) as session:
            found = session.scalar(select(Job.id).where(Job.idempotency_key == key))
        if found is not None:
            return found
        time.sleep(0.02)
    raise AssertionError(f"no job with key {key}")


async def _submit(
    api: httpx.AsyncClient, headers: dict[str, str], key: str, prefer: str
) -> httpx.Response:
    return await api.post(
        "/v1/jobs",
        json=SYNTHETIC,
        headers={**headers, "Idempotency-Key": key, "Prefer": prefer},
        timeout=_DEADLINE_S + 10,
    )


async def test_each_process_answers_201_once_the_projection_records_the_end(
    apps: list[Served], api_engine: AsyncEngine, schema_engine: Engine
) -> None:
    first, second = apps[0].client, apps[1].client
    alice = await sign_up(first, api_engine)
    completed = asyncio.create_task(_submit(first, alice.headers, "done", "wait=20"))
    rejected = asyncio.create_task(_submit(second, alice.headers, "refused", "respond-async, wait"))
    done = Story(str(alice.id), await asyncio.to_thread(_job_of, schema_engine, "done"))
    refused = Story(str(alice.id), await asyncio.to_thread(_job_of, schema_engine, "refused"))
    assert not completed.done()
    assert not rejected.done()

    ending = [granted(str(alice.id), 10), done.accepted(), done.queued(), done.started()]
    await asyncio.to_thread(project, schema_engine, [*ending, done.completed(), refused.rejected()])

    answer = await completed
    assert answer.status_code == 201, answer.text
    assert answer.headers["preference-applied"] == "wait=20"
    assert answer.headers["location"] == f"/v1/jobs/{done.job_id}"
    body = answer.json()
    assert (body["id"], body["status"], body["attempt"]) == (done.job_id, "completed", 1)
    assert [output["name"] for output in body["outputs"]] == ["0.png"]
    assert body["outputs"][0]["url"].startswith("http")
    other = await rejected
    assert other.status_code == 201, other.text
    assert other.headers["preference-applied"] == "wait=60"
    assert other.json()["status"] == "rejected"
    assert other.json()["error"]["code"] == "insufficient_credits"
    # A repeat of the request is answered as any repeat: the job, with 200.
    again = await _submit(first, alice.headers, "done", "wait=20")
    assert (again.status_code, again.json()["status"]) == (200, "completed")


@pytest.mark.parametrize("apps", [{"wait_max_s": 1}], indirect=True)
async def test_a_job_that_does_not_end_in_time_is_answered_202(
    apps: list[Served], api_engine: AsyncEngine
) -> None:
    api = apps[0].client
    alice = await sign_up(api, api_engine)
    for prefer in ("wait=30", "wait"):
        answer = await _submit(api, alice.headers, f"slow-{prefer}", prefer)
        assert answer.status_code == 202, answer.text
        # Capped at the server's longest wait, which is what the client is told.
        assert answer.headers["preference-applied"] == "wait=1"
        assert answer.json()["status"] == "pending"
    plain = await _submit(api, alice.headers, "plain", "return=minimal")
    assert plain.status_code == 202
    assert "preference-applied" not in plain.headers


@pytest.mark.parametrize("apps", [{"wait_capacity": 1}], indirect=True)
async def test_past_its_waiters_a_process_answers_at_once(
    apps: list[Served], api_engine: AsyncEngine, schema_engine: Engine
) -> None:
    api, waiters = apps[0].client, apps[0].app.state.job_waiters
    alice = await sign_up(api, api_engine)
    waiting = asyncio.create_task(_submit(api, alice.headers, "first", "wait=20"))
    first = Story(str(alice.id), await asyncio.to_thread(_job_of, schema_engine, "first"))
    deadline = time.monotonic() + _DEADLINE_S
    while waiters.waiting == 0:
        assert time.monotonic() < deadline, "the first request never waited"
        await asyncio.sleep(0.01)

    crowded = await _submit(api, alice.headers, "second", "wait=20")

    assert crowded.status_code == 202, crowded.text
    assert "preference-applied" not in crowded.headers
    assert not waiting.done()
    await asyncio.to_thread(project, schema_engine, [first.accepted(), first.cancelled()])
    answer = await waiting
    assert (answer.status_code, answer.json()["status"]) == (201, "cancelled")
