"""Submissions at volume: rows written together, API keys believed from the process cache."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api.app import create_app
from api.jobs.recorder import JobRecorder, NewJob
from api.settings import ApiSettings
from contracts import TopicSpec, new_traceparent
from genstream.db.models import Job, User
from genstream.settings import StackSettings
from producers import EventProducer
from tests.integration.api.accounts import app_client, bearer
from tests.integration.api.test_jobs_submit import (
    SYNTHETIC,
    event_producer,
    events_on,
    jobs_api,
    jobs_settings,
    record_count,
    sign_up,
)


@pytest.fixture
async def producer(stack: StackSettings) -> AsyncIterator[EventProducer]:
    async with event_producer(stack.kafka) as producer:
        yield producer


async def _api_key(api: httpx.AsyncClient, headers: dict[str, str]) -> tuple[str, str]:
    created = await api.post("/v1/api-keys", json={"name": "load"}, headers=headers)
    assert created.status_code == 201, created.text
    body = created.json()
    return body["id"], body["key"]


async def test_concurrent_submissions_each_get_their_own_recorded_job(
    api_settings: ApiSettings,
    api_engine: AsyncEngine,
    producer: EventProducer,
    stack: StackSettings,
    requested: TopicSpec,
) -> None:
    settings = jobs_settings(api_settings, requested, write_batch_max=8, write_concurrency=1)
    async with jobs_api(settings, api_engine, producer) as client:
        alice = await sign_up(client, api_engine)
        _, key = await _api_key(client, alice.headers)
        keyed = [{**bearer(key), "Idempotency-Key": f"order-{n}"} for n in range(20)]
        unkeyed = [bearer(key)] * 20
        # Two requests with one key in the same burst: they may share a statement.
        repeated = [{**bearer(key), "Idempotency-Key": "twice"}] * 2
        responses = await asyncio.gather(
            *(
                client.post("/v1/jobs", json=SYNTHETIC, headers=headers)
                for headers in keyed + unkeyed + repeated
            )
        )

    assert sorted(r.status_code for r in responses) == [200] + [202] * 41
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 41
    async with AsyncSession(api_engine) as session:
        rows = (await session.scalars(select(Job).where(Job.user_id == alice.id))).all()
    assert {row.id for row in rows} == ids
    assert all(row.emitted_at is not None for row in rows)
    # The repeat may have raced the first send and sent it again: the same event, same id.
    events = events_on(stack, requested, record_count(stack, requested))
    assert {event.envelope.subject for event in events} == ids
    assert len({event.envelope.id for event in events}) == 41


async def _seconds_until_refused_elsewhere(
    here: httpx.AsyncClient,
    elsewhere: httpx.AsyncClient,
    headers: dict[str, str],
    key_id: str,
    key: str,
    *,
    give_up_s: float,
) -> float:
    """Revokes the key through ``here``, where it is refused at once, then submits through
    ``elsewhere`` until it is refused there too; how long that took after the revocation."""
    revoked = await here.delete(f"/v1/api-keys/{key_id}", headers=headers)
    assert revoked.status_code == 204
    revoked_at = time.monotonic()
    refused = await here.post("/v1/jobs", json=SYNTHETIC, headers=bearer(key))
    assert refused.status_code == 401
    while True:
        answer = await elsewhere.post("/v1/jobs", json=SYNTHETIC, headers=bearer(key))
        if answer.status_code == 401:
            return time.monotonic() - revoked_at
        assert answer.status_code == 202, answer.text
        assert time.monotonic() - revoked_at < give_up_s, "the revoked key kept working elsewhere"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def running_jobs_api(
    settings: ApiSettings, engine: AsyncEngine, producer: EventProducer
) -> AsyncIterator[httpx.AsyncClient]:
    """Like ``jobs_api``, with the app's start-up and shut-down run as a server runs them."""
    app = create_app(settings, engine=engine, producer=producer)
    async with app.router.lifespan_context(app), app_client(app) as client:
        yield client


async def test_a_revoked_key_stops_at_once_in_every_process(
    api_settings: ApiSettings,
    api_engine: AsyncEngine,
    producer: EventProducer,
    requested: TopicSpec,
) -> None:
    # Far longer than the wait below: only the announcement can stop the key in time.
    auth = api_settings.auth.model_copy(update={"api_key_cache_s": 60.0})
    settings = jobs_settings(api_settings.model_copy(update={"auth": auth}), requested)
    async with (
        running_jobs_api(settings, api_engine, producer) as here,
        running_jobs_api(settings, api_engine, producer) as elsewhere,
    ):
        alice = await sign_up(here, api_engine)
        key_id, key = await _api_key(here, alice.headers)
        _, other_key = await _api_key(here, alice.headers)
        for api in (here, elsewhere):
            for secret in (key, other_key):
                accepted = await api.post("/v1/jobs", json=SYNTHETIC, headers=bearer(secret))
                assert accepted.status_code == 202, accepted.text

        await _seconds_until_refused_elsewhere(
            here, elsewhere, alice.headers, key_id, key, give_up_s=5.0
        )
        # Only the revoked key is forgotten: the user's other key still works everywhere.
        for api in (here, elsewhere):
            kept = await api.post("/v1/jobs", json=SYNTHETIC, headers=bearer(other_key))
            assert kept.status_code == 202, kept.text


async def test_a_revoked_key_stops_within_the_bound_where_nobody_announced_it(
    api_settings: ApiSettings,
    api_engine: AsyncEngine,
    producer: EventProducer,
    requested: TopicSpec,
) -> None:
    bound_s = 1.0
    auth = api_settings.auth.model_copy(update={"api_key_cache_s": bound_s})
    settings = jobs_settings(api_settings.model_copy(update={"auth": auth}), requested)
    # Two apps on one database without their start-up: two API processes, each with its own
    # cache and no listener, as when a process's listener is cut off.
    async with (
        jobs_api(settings, api_engine, producer) as here,
        jobs_api(settings, api_engine, producer) as elsewhere,
    ):
        # PRO: the loop below submits until refused, more jobs than FREE lets a user have.
        alice = await sign_up(here, api_engine, plan="PRO")
        key_id, key = await _api_key(here, alice.headers)
        for api in (here, elsewhere):
            accepted = await api.post("/v1/jobs", json=SYNTHETIC, headers=bearer(key))
            assert accepted.status_code == 202, accepted.text

        elapsed_s = await _seconds_until_refused_elsewhere(
            here, elsewhere, alice.headers, key_id, key, give_up_s=bound_s + 10
        )
        # The entry was made before the revocation, so it expired no later than bound_s after.
        assert elapsed_s <= bound_s + 1.0


async def test_a_row_the_database_refuses_fails_alone(api_engine: AsyncEngine) -> None:
    async with AsyncSession(api_engine) as session, session.begin():
        user_id = uuid.uuid4()
        await session.execute(
            insert(User).values(id=user_id, email=f"{user_id}@example.com", plan="FREE")
        )
    recorder = JobRecorder(engine=api_engine, max_batch=10, concurrency=1)

    def row(owner: uuid.UUID) -> NewJob:
        return NewJob(
            id=f"job_{uuid.uuid4().hex}",
            user_id=owner,
            type="synthetic",
            input='{"kind": "synthetic", "steps": 1}',
            media=None,
            webhook_url=None,
            idempotency_key=None,
            request_hash="0" * 64,
            event_id=str(uuid.uuid4()),
            event_trace=new_traceparent(),
            created_at=datetime.now(UTC),
        )

    # Nobody owns the second row: its foreign key fails, which fails its statement.
    good, orphan, other = row(user_id), row(uuid.uuid4()), row(user_id)
    outcomes = await asyncio.gather(
        *(recorder.insert(job) for job in (good, orphan, other)), return_exceptions=True
    )
    await recorder.close()

    assert (outcomes[0], outcomes[2]) == (True, True)
    assert isinstance(outcomes[1], IntegrityError)
    async with AsyncSession(api_engine) as session:
        stored = await session.scalar(
            select(func.count()).select_from(Job).where(Job.user_id == user_id)
        )
    assert stored == 2
