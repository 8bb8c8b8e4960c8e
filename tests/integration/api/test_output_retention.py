"""Outputs older than the owner's plan keeps them leave the real object store; the job stays."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import Session

from api.jobs.retention import sweep
from api.settings import ApiSettings
from contracts import Plan, load_catalog
from genstream.db import sync_engine
from genstream.db.models import User
from genstream.settings import StackSettings
from genstream.storage import s3_client
from tests.integration.api.lifecycle import Story, add_job, project
from tests.integration.api.test_jobs_submit import sign_up


@pytest.fixture
def schema_engine(stack: StackSettings, pg_schema: tuple[Engine, str]) -> Iterator[Engine]:
    engine = sync_engine(stack.pg, schema=pg_schema[1])
    yield engine
    engine.dispose()


async def test_outputs_past_the_plans_retention_are_removed(
    jobs_client: httpx.AsyncClient,
    api_engine: AsyncEngine,
    schema_engine: Engine,
    api_settings: ApiSettings,
) -> None:
    catalog = load_catalog()
    free_days = catalog.limits(Plan.FREE).output_retention_days
    pro_days = catalog.limits(Plan.PRO).output_retention_days
    assert free_days is not None
    assert pro_days is not None
    assert free_days < pro_days
    now = datetime.now(UTC)
    free = await sign_up(jobs_client, api_engine)
    pro = await sign_up(jobs_client, api_engine, plan="PRO")
    jobs: dict[str, tuple[str, datetime]] = {}
    for name, owner, age_days in (
        ("free_old", free, free_days + 1),
        ("free_new", free, free_days - 1),
        ("pro_same_age", pro, free_days + 1),
    ):
        user_id = str(owner.id)
        job_id = add_job(schema_engine, user_id)
        story = Story(user_id, job_id, start=now - timedelta(days=age_days))
        project(
            schema_engine, [story.accepted(), story.queued(), story.started(), story.completed()]
        )
        jobs[name] = (user_id, job_id)
    bucket = api_settings.s3.outputs_bucket
    async with s3_client(api_settings.s3) as client:
        try:
            for user_id, job_id in jobs.values():
                await client.put_object(
                    Bucket=bucket, Key=f"outputs/{user_id}/{job_id}/0.png", Body=b"x"
                )

            sessions = async_sessionmaker(api_engine, expire_on_commit=False)
            assert await sweep(sessions, api_settings, now=now) == 1
            # A second sweep finds nothing more to do.
            assert await sweep(sessions, api_settings, now=now) == 0

            async def stored(name: str) -> list[str]:
                user_id, job_id = jobs[name]
                listed = await client.list_objects_v2(
                    Bucket=bucket, Prefix=f"outputs/{user_id}/{job_id}/"
                )
                return [item["Key"] for item in listed.get("Contents", [])]

            assert await stored("free_old") == []
            assert await stored("free_new") != []
            assert await stored("pro_same_age") != []
            old = (
                await jobs_client.get(f"/v1/jobs/{jobs['free_old'][1]}", headers=free.headers)
            ).json()
            assert old["status"] == "completed"
            assert old["outputs_expired_at"] is not None
            assert [output["url"] for output in old["outputs"]] == [None]
            kept = (
                await jobs_client.get(f"/v1/jobs/{jobs['free_new'][1]}", headers=free.headers)
            ).json()
            assert kept["outputs_expired_at"] is None
            assert kept["outputs"][0]["url"].startswith("http")

            # The owner's plan now is what counts: a user gone down to FREE loses old outputs.
            with Session(schema_engine) as session, session.begin():
                session.execute(update(User).where(User.id == pro.id).values(plan="FREE"))
            assert await sweep(sessions, api_settings, now=now) == 1
            assert await stored("pro_same_age") == []
        finally:
            for user_id, job_id in jobs.values():
                await client.delete_object(Bucket=bucket, Key=f"outputs/{user_id}/{job_id}/0.png")
