"""Operators on the real stack: a failed job re-run from the API, and the snapshot's ends by
minute and workers at work, as the operator page shows them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import Engine, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from contracts import JobRequested, TopicSpec, decode
from genstream.db import sync_engine
from genstream.db.models import Job, User
from genstream.rerun import rerun_key
from genstream.settings import StackSettings
from tests.integration.api.lifecycle import Story, add_job, project
from tests.integration.api.test_jobs_submit import sign_up
from tests.polling import poll_until


@pytest.fixture
def schema_engine(stack: StackSettings, pg_schema: tuple[Engine, str]) -> Iterator[Engine]:
    engine = sync_engine(stack.pg, schema=pg_schema[1])
    yield engine
    engine.dispose()


async def _admin(api: httpx.AsyncClient, engine: AsyncEngine) -> dict[str, str]:
    account = await sign_up(api, engine)
    async with AsyncSession(engine) as session, session.begin():
        await session.execute(update(User).where(User.id == account.id).values(role="admin"))
    return account.headers


def _requested(stack: StackSettings, topic: TopicSpec, job_id: str) -> list[JobRequested]:
    """The ``job.requested`` events of ``job_id`` on ``topic``, read from its start."""
    consumer = Consumer(stack.kafka.librdkafka(**{"group.id": f"read-{uuid.uuid4().hex}"}))
    consumer.assign([TopicPartition(topic.name, p, 0) for p in range(topic.partitions)])
    found: list[JobRequested] = []
    try:
        for message in consumer.consume(500, timeout=3):
            if message.error() is None:
                data = decode(message.value(), message.headers()).data
                if isinstance(data, JobRequested) and data.job_id == job_id:
                    found.append(data)
    finally:
        consumer.close()
    return found


async def test_an_admin_re_runs_a_failed_job_once_and_others_may_not(
    jobs_client: httpx.AsyncClient,
    api_engine: AsyncEngine,
    schema_engine: Engine,
    stack: StackSettings,
    requested: TopicSpec,
) -> None:
    owner = await sign_up(jobs_client, api_engine)
    failed = add_job(schema_engine, str(owner.id))
    story = Story(str(owner.id), failed)
    project(schema_engine, [story.accepted(), story.queued(), story.started(), story.failed()])
    running = add_job(schema_engine, str(owner.id))
    project(schema_engine, [Story(str(owner.id), running).accepted()])
    path = f"/v1/admin/jobs/{failed}/rerun"

    assert (await jobs_client.post(path)).status_code == 401
    assert (await jobs_client.post(path, headers=owner.headers)).status_code == 403
    admin = await _admin(jobs_client, api_engine)
    first = await jobs_client.post(path, headers=admin)
    assert first.status_code == 201, first.text
    made = first.json()
    assert (made["job_id"], made["created"]) == (failed, True)
    again = await jobs_client.post(path, headers=admin)
    assert (again.status_code, again.json()) == (200, {**made, "created": False})
    assert (
        await jobs_client.post("/v1/admin/jobs/job_nope/rerun", headers=admin)
    ).status_code == 404
    refused = await jobs_client.post(f"/v1/admin/jobs/{running}/rerun", headers=admin)
    assert (refused.status_code, refused.json()["type"].rsplit("/", 1)[-1]) == (
        409,
        "job_not_failed",
    )

    rerun_id = made["rerun_job_id"]
    with schema_engine.connect() as connection:
        rows = {r.id: r for r in connection.execute(select(Job).where(Job.user_id == owner.id))}
    rerun, original = rows[rerun_id], rows[failed]
    assert (rerun.idempotency_key, rerun.input, rerun.type) == (
        rerun_key(failed),
        original.input,
        original.type,
    )
    assert rerun.emitted_at is not None
    assert len(rows) == 3  # the failed job, the other one and a single re-run
    # One request on the topic however often it was asked, the owner's, for the failed input.
    sent: list[JobRequested] = []

    def one_request() -> bool:
        sent[:] = _requested(stack, requested, rerun_id)
        return len(sent) == 1

    poll_until(one_request, timeout_s=15, what=lambda: f"one job.requested, got {sent}")
    assert sent[0].idempotency_key == rerun_key(failed)
    # The owner sees the re-run among their jobs.
    listed = (await jobs_client.get("/v1/jobs", headers=owner.headers)).json()["jobs"]
    assert rerun_id in {job["id"] for job in listed}


async def test_the_snapshot_counts_the_last_hours_ends_by_minute_and_what_workers_run(
    jobs_client: httpx.AsyncClient, api_engine: AsyncEngine, schema_engine: Engine
) -> None:
    owner = str((await sign_up(jobs_client, api_engine)).id)
    ended = [add_job(schema_engine, owner) for _ in range(3)]
    for job_id, end in zip(ended, ("completed", "completed", "failed"), strict=True):
        story = Story(owner, job_id)
        project(
            schema_engine,
            [story.accepted(), story.queued(), story.started(), getattr(story, end)()],
        )
    busy = [add_job(schema_engine, owner) for _ in range(2)]
    for job_id in busy:
        story = Story(owner, job_id)
        project(schema_engine, [story.accepted(), story.queued(), story.started("w-0")])
    admin = await _admin(jobs_client, api_engine)

    status = (await jobs_client.get("/v1/admin/status", headers=admin)).json()
    minutes = status["finished_last_hour"]
    assert sum(m["completed"] for m in minutes) == 2
    assert sum(m["failed"] for m in minutes) == 1
    [worker] = status["workers"]
    assert (worker["worker_id"], worker["running"], worker["job_types"]) == (
        "w-0",
        2,
        ["synthetic"],
    )
    assert sorted(worker["job_ids"]) == sorted(busy)
