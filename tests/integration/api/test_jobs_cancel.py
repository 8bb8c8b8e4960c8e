"""POST /v1/jobs/{id}/cancel on the real stack: a command on jobs.requested, for owners only."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from contracts import JobCancelRequested, JobRequested, TopicSpec
from genstream.db.models import Job
from genstream.settings import StackSettings
from tests.integration.api.test_jobs_submit import (
    SYNTHETIC,
    events_on,
    is_problem,
    sign_up,
)


async def _submit(jobs_client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await jobs_client.post("/v1/jobs", json=SYNTHETIC, headers=headers)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def _set(engine: AsyncEngine, job_id: str, **values: object) -> None:
    async with AsyncSession(engine) as session, session.begin():
        await session.execute(update(Job).where(Job.id == job_id).values(**values))


async def test_cancelling_a_pending_job_follows_its_request_on_the_users_partition(
    jobs_client: httpx.AsyncClient,
    api_engine: AsyncEngine,
    stack: StackSettings,
    requested: TopicSpec,
) -> None:
    alice = await sign_up(jobs_client, api_engine)
    job_id = await _submit(jobs_client, alice.headers)

    response = await jobs_client.post(f"/v1/jobs/{job_id}/cancel", headers=alice.headers)

    assert response.status_code == 202, response.text
    assert response.json() == {"id": job_id, "status": "cancelling"}
    submitted, cancel = events_on(stack, requested, 2)
    assert isinstance(submitted.envelope.data, JobRequested)
    assert cancel.envelope.data == JobCancelRequested(job_id=job_id, reason="user")
    assert (cancel.envelope.subject, cancel.envelope.user_id) == (job_id, str(alice.id))
    assert cancel.key == submitted.key == str(alice.id).encode()
    assert (cancel.partition, cancel.offset) == (submitted.partition, submitted.offset + 1)


async def test_cancelling_again_is_accepted_again(
    jobs_client: httpx.AsyncClient,
    api_engine: AsyncEngine,
    stack: StackSettings,
    requested: TopicSpec,
) -> None:
    alice = await sign_up(jobs_client, api_engine)
    job_id = await _submit(jobs_client, alice.headers)
    for _ in range(2):
        response = await jobs_client.post(f"/v1/jobs/{job_id}/cancel", headers=alice.headers)
        assert response.status_code == 202
    events = events_on(stack, requested, 3)
    cancels = [e.envelope for e in events if isinstance(e.envelope.data, JobCancelRequested)]
    assert len(cancels) == 2
    assert cancels[0].id != cancels[1].id


async def test_someone_elses_job_does_not_exist_for_the_caller(
    jobs_client: httpx.AsyncClient,
    api_engine: AsyncEngine,
    stack: StackSettings,
    requested: TopicSpec,
) -> None:
    alice, mallory = await sign_up(jobs_client, api_engine), await sign_up(jobs_client, api_engine)
    job_id = await _submit(jobs_client, alice.headers)

    is_problem(await jobs_client.post(f"/v1/jobs/{job_id}/cancel", headers=mallory.headers), 404)
    is_problem(await jobs_client.post("/v1/jobs/job_unknown/cancel", headers=alice.headers), 404)
    assert (await jobs_client.post(f"/v1/jobs/{job_id}/cancel")).status_code == 401
    events_on(stack, requested, 1)


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled", "rejected", "expired"])
async def test_a_finished_job_cannot_be_cancelled(
    jobs_client: httpx.AsyncClient,
    api_engine: AsyncEngine,
    stack: StackSettings,
    requested: TopicSpec,
    status: str,
) -> None:
    alice = await sign_up(jobs_client, api_engine)
    job_id = await _submit(jobs_client, alice.headers)
    await _set(api_engine, job_id, status=status)

    problem = is_problem(
        await jobs_client.post(f"/v1/jobs/{job_id}/cancel", headers=alice.headers), 409
    )
    assert problem["detail"] == f"the job is already {status}"
    events_on(stack, requested, 1)


@pytest.mark.parametrize("status", ["accepted", "queued", "running"])
async def test_a_job_on_its_way_can_be_cancelled(
    jobs_client: httpx.AsyncClient, api_engine: AsyncEngine, status: str
) -> None:
    alice = await sign_up(jobs_client, api_engine)
    job_id = await _submit(jobs_client, alice.headers)
    await _set(api_engine, job_id, status=status)
    response = await jobs_client.post(f"/v1/jobs/{job_id}/cancel", headers=alice.headers)
    assert response.status_code == 202


async def test_a_cancel_never_overtakes_an_unacknowledged_submission(
    jobs_client: httpx.AsyncClient,
    api_engine: AsyncEngine,
    stack: StackSettings,
    requested: TopicSpec,
) -> None:
    alice = await sign_up(jobs_client, api_engine)
    job_id = await _submit(jobs_client, alice.headers)
    await _set(api_engine, job_id, emitted_at=None)

    problem = is_problem(
        await jobs_client.post(f"/v1/jobs/{job_id}/cancel", headers=alice.headers), 409
    )
    assert "Idempotency-Key" in problem["detail"]
    events_on(stack, requested, 1)


async def test_a_job_reads_as_cancelling_from_the_acknowledged_request_until_it_ends(
    jobs_client: httpx.AsyncClient, api_engine: AsyncEngine
) -> None:
    alice = await sign_up(jobs_client, api_engine)
    job_id, other = (
        await _submit(jobs_client, alice.headers),
        await _submit(jobs_client, alice.headers),
    )
    await _set(api_engine, job_id, status="running")
    await _set(api_engine, other, status="queued")

    cancelled = await jobs_client.post(f"/v1/jobs/{job_id}/cancel", headers=alice.headers)
    assert cancelled.status_code == 202, cancelled.text

    shown = await jobs_client.get(f"/v1/jobs/{job_id}", headers=alice.headers)
    assert shown.json()["status"] == "cancelling"
    listed = await jobs_client.get(
        "/v1/jobs", params={"status": "cancelling"}, headers=alice.headers
    )
    assert [job["id"] for job in listed.json()["jobs"]] == [job_id]
    running = await jobs_client.get("/v1/jobs", params={"status": "running"}, headers=alice.headers)
    assert running.json()["jobs"] == []
    # The job's other siblings go on as they were.
    assert (await jobs_client.get(f"/v1/jobs/{other}", headers=alice.headers)).json()[
        "status"
    ] == "queued"

    # It ends as it ends: a job that finished first reads as completed, not cancelling.
    await _set(api_engine, job_id, status="completed")
    ended = await jobs_client.get(f"/v1/jobs/{job_id}", headers=alice.headers)
    assert ended.json()["status"] == "completed"
