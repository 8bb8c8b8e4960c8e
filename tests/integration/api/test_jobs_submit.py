"""POST /v1/jobs on the real stack: the row, the event on the broker, idempotency keys."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api.app import create_app
from api.settings import ApiSettings, JobsSettings
from contracts import JobRequested, JobType, SyntheticInput, TopicSpec, VideoGenerateInput
from genstream.db.models import Job, User
from genstream.kafka import ConsumedEvent, EventConsumer, KafkaSettings
from genstream.settings import StackSettings
from producers import EventProducer
from tests.integration.api.accounts import app_client, bearer, login, register

# --- helpers shared with the other jobs and uploads tests --------------------------------------


@dataclass(frozen=True, slots=True)
class Account:
    id: uuid.UUID
    headers: dict[str, str]


async def sign_up(api: httpx.AsyncClient, engine: AsyncEngine, plan: str = "FREE") -> Account:
    """A new user on ``plan``, signed in."""
    user = await register(api)
    tokens = await login(api, user["email"])
    account = Account(id=uuid.UUID(user["id"]), headers=bearer(tokens["access_token"]))
    if plan != "FREE":
        async with AsyncSession(engine) as session, session.begin():
            await session.execute(update(User).where(User.id == account.id).values(plan=plan))
    return account


def jobs_settings(settings: ApiSettings, topic: TopicSpec, **jobs: Any) -> ApiSettings:
    """``settings`` writing to the test's copy of jobs.requested, synthetic jobs switched on."""
    options = {"requested_topic": topic.name, "synthetic_enabled": True, **jobs}
    return settings.model_copy(update={"jobs": JobsSettings(**options)})


@asynccontextmanager
async def jobs_api(
    settings: ApiSettings, engine: AsyncEngine, producer: EventProducer
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app(settings, engine=engine, producer=producer)) as client:
        yield client


@asynccontextmanager
async def event_producer(
    settings: KafkaSettings, *, close_timeout_s: float = 5.0
) -> AsyncIterator[EventProducer]:
    producer = EventProducer(settings=settings)
    try:
        yield producer
    finally:
        await asyncio.to_thread(producer.close, close_timeout_s)


def record_count(stack: StackSettings, topic: TopicSpec) -> int:
    """Records on every partition of ``topic``, read from the broker's watermarks."""
    consumer = Consumer(stack.kafka.librdkafka(**{"group.id": f"count-{uuid.uuid4().hex}"}))
    try:
        total = 0
        for partition in range(topic.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic.name, partition), timeout=10
            )
            total += high - low
        return total
    finally:
        consumer.close()


def events_on(stack: StackSettings, topic: TopicSpec, expected: int) -> list[ConsumedEvent]:
    """Every event on ``topic``, which must hold exactly ``expected`` records."""
    everything = [(topic.name, partition, 0) for partition in range(topic.partitions)]
    with EventConsumer(
        settings=stack.kafka, group_id=f"read-{uuid.uuid4().hex}", assignments=everything
    ) as consumer:
        events = consumer.drain(until=lambda got: len(got) >= expected, timeout_s=30)
    assert len(events) == expected
    assert record_count(stack, topic) == expected
    return events


def is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# --- fixtures --------------------------------------------------------------------------------

SYNTHETIC = {"type": "synthetic", "input": {"steps": 3, "step_ms": 0}}


@pytest.fixture
async def producer(stack: StackSettings) -> AsyncIterator[EventProducer]:
    async with event_producer(stack.kafka) as producer:
        yield producer


@pytest.fixture
async def client(
    api_settings: ApiSettings,
    api_engine: AsyncEngine,
    requested: TopicSpec,
    producer: EventProducer,
) -> AsyncIterator[httpx.AsyncClient]:
    async with jobs_api(jobs_settings(api_settings, requested), api_engine, producer) as client:
        yield client


# --- tests -----------------------------------------------------------------------------------


async def test_a_submission_is_one_requested_event_keyed_by_its_user(
    client: httpx.AsyncClient, api_engine: AsyncEngine, stack: StackSettings, requested: TopicSpec
) -> None:
    alice = await sign_up(client, api_engine)
    response = await client.post(
        "/v1/jobs",
        json={**SYNTHETIC, "webhook_url": "http://127.0.0.1:9/hook"},
        headers={**alice.headers, "Idempotency-Key": "order-1"},
    )

    assert response.status_code == 202, response.text
    body = response.json()
    job_id = body["id"]
    assert job_id.startswith("job_")
    assert body == {
        "id": job_id,
        "status": "pending",
        "links": {
            "self": f"/v1/jobs/{job_id}",
            "events": f"/v1/jobs/{job_id}/events",
            "cancel": f"/v1/jobs/{job_id}/cancel",
        },
    }
    assert response.headers["location"] == f"/v1/jobs/{job_id}"

    [event] = events_on(stack, requested, 1)
    assert event.key == str(alice.id).encode()
    envelope = event.envelope
    assert (envelope.subject, envelope.user_id, envelope.source) == (
        job_id,
        str(alice.id),
        "genstream/api",
    )
    data = envelope.data
    assert isinstance(data, JobRequested)
    assert data.job_type is JobType.SYNTHETIC
    assert data.input == SyntheticInput(steps=3, step_ms=0)
    assert data.idempotency_key == "order-1"
    assert data.webhook_url == "http://127.0.0.1:9/hook"
    assert data.media is None

    async with AsyncSession(api_engine) as session:
        job = await session.get(Job, job_id)
    assert job is not None
    assert (job.user_id, job.status, job.event_id) == (alice.id, "pending", envelope.id)
    assert job.emitted_at is not None
    assert data.requested_at == job.created_at

    seen = await client.get(f"/v1/jobs/{job_id}", headers=alice.headers)
    assert seen.status_code == 200
    shown = seen.json()
    # The submission as written; the lifecycle fields stay empty until the projection fills them.
    assert {key: shown[key] for key in ("id", "type", "status", "created_at", "input")} == {
        "id": job_id,
        "type": "synthetic",
        "status": "pending",
        "created_at": shown["created_at"],
        "input": {
            "kind": "synthetic",
            "steps": 3,
            "step_ms": 0,
            "fail_at": None,
            "fail_attempts": None,
            "output_bytes": 1024,
        },
    }
    assert (shown["tier"], shown["queue"], shown["outputs"], shown["error"]) == (
        None,
        None,
        [],
        None,
    )


async def test_a_repeated_key_answers_the_same_job_and_sends_nothing(
    client: httpx.AsyncClient, api_engine: AsyncEngine, stack: StackSettings, requested: TopicSpec
) -> None:
    alice = await sign_up(client, api_engine)
    headers = {**alice.headers, "Idempotency-Key": "same"}
    first = await client.post("/v1/jobs", json=SYNTHETIC, headers=headers)
    # The same request, written differently: key order and a default spelled out.
    again = {"input": {"output_bytes": 1024, "step_ms": 0, "steps": 3}, "type": "synthetic"}
    second = await client.post("/v1/jobs", json=again, headers=headers)

    assert first.status_code == 202
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["location"] == first.headers["location"]
    events_on(stack, requested, 1)


async def test_a_key_reused_with_another_request_is_a_conflict(
    client: httpx.AsyncClient, api_engine: AsyncEngine, stack: StackSettings, requested: TopicSpec
) -> None:
    alice = await sign_up(client, api_engine)
    headers = {**alice.headers, "Idempotency-Key": "reused"}
    first = await client.post("/v1/jobs", json=SYNTHETIC, headers=headers)
    other = {"type": "synthetic", "input": {"steps": 4, "step_ms": 0}}
    second = await client.post("/v1/jobs", json=other, headers=headers)

    assert first.status_code == 202
    problem = is_problem(second, 409)
    assert problem["detail"] == "idempotency key reused with a different request"
    events_on(stack, requested, 1)


async def test_keys_belong_to_their_user(
    client: httpx.AsyncClient, api_engine: AsyncEngine, stack: StackSettings, requested: TopicSpec
) -> None:
    alice, bob = await sign_up(client, api_engine), await sign_up(client, api_engine)
    ids = set()
    for account in (alice, bob):
        headers = {**account.headers, "Idempotency-Key": "shared-name"}
        response = await client.post("/v1/jobs", json=SYNTHETIC, headers=headers)
        assert response.status_code == 202
        ids.add(response.json()["id"])
    assert len(ids) == 2
    events_on(stack, requested, 2)


async def test_concurrent_retries_with_one_key_make_one_job(
    client: httpx.AsyncClient, api_engine: AsyncEngine, stack: StackSettings, requested: TopicSpec
) -> None:
    alice = await sign_up(client, api_engine)
    headers = {**alice.headers, "Idempotency-Key": "racy"}
    responses = await asyncio.gather(
        *(client.post("/v1/jobs", json=SYNTHETIC, headers=headers) for _ in range(8))
    )

    assert sorted(r.status_code for r in responses) == [200] * 7 + [202]
    assert len({r.json()["id"] for r in responses}) == 1
    # A retry that raced the first send may send it again: the same event, deduplicated by id.
    expected = record_count(stack, requested)
    events = events_on(stack, requested, expected)
    assert len({event.envelope.id for event in events}) == 1


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"type": "image.generate", "input": {"prompt": "x", "width": 100}}, "width"),
        ({"type": "image.generate", "input": {"prompt": "x" * 2001}}, "prompt"),
        ({"type": "image.transmogrify", "input": {}}, "type"),
        ({"type": "video.generate", "input": {"prompt": "x"}}, "duration_s"),
        (
            {"type": "image.generate", "input": {"prompt": "x"}, "webhook_url": "ftp://h/"},
            "webhook_url",
        ),
        (
            {"type": "image.generate", "input": {"prompt": "x"}, "webhook_url": "https://u:p@h/"},
            "webhook_url",
        ),
    ],
)
async def test_invalid_requests_are_problems_and_send_nothing(
    client: httpx.AsyncClient,
    api_engine: AsyncEngine,
    stack: StackSettings,
    requested: TopicSpec,
    body: dict[str, Any],
    where: str,
) -> None:
    alice = await sign_up(client, api_engine)
    problem = is_problem(await client.post("/v1/jobs", json=body, headers=alice.headers), 422)
    assert [error["loc"][-1] for error in problem["errors"]] == [where]
    events_on(stack, requested, 0)


async def test_synthetic_jobs_are_refused_unless_switched_on(
    api_settings: ApiSettings,
    api_engine: AsyncEngine,
    producer: EventProducer,
    stack: StackSettings,
    requested: TopicSpec,
) -> None:
    settings = jobs_settings(api_settings, requested, synthetic_enabled=False)
    async with jobs_api(settings, api_engine, producer) as client:
        alice = await sign_up(client, api_engine)
        response = await client.post("/v1/jobs", json=SYNTHETIC, headers=alice.headers)
    problem = is_problem(response, 422)
    assert problem["errors"][0]["loc"] == ["body", "type"]
    events_on(stack, requested, 0)


@pytest.mark.parametrize("key", [b"", b"x" * 256, b"has space", "naïve".encode()])
async def test_a_malformed_idempotency_key_is_refused(
    client: httpx.AsyncClient, api_engine: AsyncEngine, key: bytes
) -> None:
    alice = await sign_up(client, api_engine)
    headers = {name.encode(): value.encode() for name, value in alice.headers.items()}
    headers[b"Idempotency-Key"] = key
    response = await client.post("/v1/jobs", json=SYNTHETIC, headers=headers)
    is_problem(response, 422)


async def test_plan_limits_are_checked_before_anything_is_sent(
    client: httpx.AsyncClient, api_engine: AsyncEngine, stack: StackSettings, requested: TopicSpec
) -> None:
    free = await sign_up(client, api_engine)
    pro = await sign_up(client, api_engine, plan="PRO")
    minute = {"type": "video.generate", "input": {"prompt": "waves", "duration_s": 60}}

    problem = is_problem(await client.post("/v1/jobs", json=minute, headers=free.headers), 422)
    assert problem["type"] == "plan_limit"
    assert problem["plan"] == "FREE"
    assert "30 s" in problem["detail"]
    events_on(stack, requested, 0)

    accepted = await client.post("/v1/jobs", json=minute, headers=pro.headers)
    assert accepted.status_code == 202, accepted.text
    [event] = events_on(stack, requested, 1)
    assert isinstance(event.envelope.data, JobRequested)
    assert event.envelope.data.input == VideoGenerateInput(prompt="waves", duration_s=60)


async def test_jobs_are_seen_by_their_owner_only(
    client: httpx.AsyncClient, api_engine: AsyncEngine
) -> None:
    alice, bob = await sign_up(client, api_engine), await sign_up(client, api_engine)
    job_id = (await client.post("/v1/jobs", json=SYNTHETIC, headers=alice.headers)).json()["id"]

    is_problem(await client.get(f"/v1/jobs/{job_id}", headers=bob.headers), 404)
    is_problem(await client.get("/v1/jobs/job_nope", headers=alice.headers), 404)
    assert (await client.get(f"/v1/jobs/{job_id}")).status_code == 401


async def test_when_the_broker_does_not_ack_a_keyed_job_waits_for_its_retry(
    api_settings: ApiSettings,
    api_engine: AsyncEngine,
    producer: EventProducer,
    stack: StackSettings,
    requested: TopicSpec,
) -> None:
    settings = jobs_settings(api_settings, requested, send_timeout_s=1.0)
    nowhere = KafkaSettings(bootstrap_servers="127.0.0.1:9")  # nothing listens there
    # Its records can never be delivered: waiting for them on close would only slow the test.
    async with (
        event_producer(nowhere, close_timeout_s=0.1) as dead,
        jobs_api(settings, api_engine, dead) as client,
    ):
        alice = await sign_up(client, api_engine)
        keyed = await client.post(
            "/v1/jobs", json=SYNTHETIC, headers={**alice.headers, "Idempotency-Key": "k"}
        )
        unkeyed = await client.post("/v1/jobs", json=SYNTHETIC, headers=alice.headers)

    is_problem(keyed, 503)
    assert keyed.headers["retry-after"] == "5"
    is_problem(unkeyed, 503)
    async with AsyncSession(api_engine) as session:
        rows = (await session.scalars(select(Job).where(Job.user_id == alice.id))).all()
    # Without a key nothing could re-send it: that row is gone. The keyed one awaits its retry.
    [kept] = rows
    assert (kept.idempotency_key, kept.emitted_at) == ("k", None)

    async with jobs_api(settings, api_engine, producer) as client:
        retried = await client.post(
            "/v1/jobs", json=SYNTHETIC, headers={**alice.headers, "Idempotency-Key": "k"}
        )
    assert retried.status_code == 200, retried.text
    assert retried.json()["id"] == kept.id
    [event] = events_on(stack, requested, 1)
    assert (event.envelope.id, event.envelope.subject) == (kept.event_id, kept.id)
    async with AsyncSession(api_engine) as session:
        emitted = await session.get(Job, kept.id)
    assert emitted is not None
    assert emitted.emitted_at is not None


async def test_without_a_producer_submissions_are_unavailable(
    api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    async with app_client(create_app(api_settings, engine=api_engine)) as client:
        alice = await sign_up(client, api_engine)
        body = {"type": "image.generate", "input": {"prompt": "x"}}
        response = await client.post("/v1/jobs", json=body, headers=alice.headers)
    is_problem(response, 503)
