"""Past a plan's unfinished jobs (running and waiting their turn), a submission is refused
at once with 429 ``queue_full``; another user is not."""

from __future__ import annotations

import asyncio
import time

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from api.jobs.backlog import RETRY_AFTER_S
from contracts import JobStatus, Plan, TopicSpec, load_catalog
from genstream.db.models import Job
from genstream.settings import StackSettings
from tests.integration.api.test_jobs_submit import SYNTHETIC, events_on, is_problem, sign_up


async def test_past_the_plans_unfinished_jobs_a_submission_is_refused_as_queue_full(
    jobs_client: httpx.AsyncClient,
    api_engine: AsyncEngine,
    stack: StackSettings,
    requested: TopicSpec,
) -> None:
    limits = load_catalog().limits(Plan.FREE)
    bound = limits.max_concurrent_jobs + limits.max_waiting_jobs
    alice, bob = await sign_up(jobs_client, api_engine), await sign_up(jobs_client, api_engine)
    for _ in range(bound):
        accepted = await jobs_client.post("/v1/jobs", json=SYNTHETIC, headers=alice.headers)
        assert accepted.status_code == 202, accepted.text

    refused = await jobs_client.post("/v1/jobs", json=SYNTHETIC, headers=alice.headers)
    problem = is_problem(refused, 429)
    assert problem["type"] == "queue_full"
    assert (problem["unfinished"], problem["max_waiting_jobs"]) == (bound, limits.max_waiting_jobs)
    assert int(refused.headers["Retry-After"]) > 0
    events_on(stack, requested, bound)  # the refused one sent nothing

    # Another user of the plan is not held back.
    other = await jobs_client.post("/v1/jobs", json=SYNTHETIC, headers=bob.headers)
    assert other.status_code == 202, other.text

    # Once jobs end, the user's count is read again and submissions pass.
    async with api_engine.begin() as connection:
        await connection.execute(
            update(Job).where(Job.user_id == alice.id).values(status=JobStatus.COMPLETED.value)
        )
    deadline = time.monotonic() + RETRY_AFTER_S + 10
    while True:
        answer = await jobs_client.post("/v1/jobs", json=SYNTHETIC, headers=alice.headers)
        if answer.status_code == 202:
            break
        assert answer.status_code == 429, answer.text
        assert time.monotonic() < deadline, "refused past the count's renewal"
        await asyncio.sleep(0.1)
