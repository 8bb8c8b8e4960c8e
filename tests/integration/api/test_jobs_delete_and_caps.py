"""Deleting a finished job (its files leave the real object store) and API keys' spend caps."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from api.settings import ApiSettings
from genstream.db import sync_engine
from genstream.db.models import Job, Upload
from genstream.settings import StackSettings
from genstream.storage import S3Client, s3_client
from genstream.storage.keys import checked_upload_key, upload_key
from tests.integration.api.accounts import bearer
from tests.integration.api.lifecycle import Story, add_job, project
from tests.integration.api.test_jobs_submit import SYNTHETIC, is_problem, sign_up


@pytest.fixture
def schema_engine(stack: StackSettings, pg_schema: tuple[Engine, str]) -> Iterator[Engine]:
    engine = sync_engine(stack.pg, schema=pg_schema[1])
    yield engine
    engine.dispose()


@pytest.fixture
async def store(api_settings: ApiSettings) -> AsyncIterator[S3Client]:
    async with s3_client(api_settings.s3) as client:
        yield client


async def _keys(client: S3Client, bucket: str, prefix: str) -> list[str]:
    listed = await client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def _edit_job(engine: Engine, user_id: str, upload_id: str) -> str:
    """An image edit of the upload, as the API writes its row."""
    job_id = add_job(engine, user_id)
    edit = {"kind": "image.edit", "upload_id": upload_id, "prompt": "stage it"}
    with Session(engine) as session, session.begin():
        session.execute(update(Job).where(Job.id == job_id).values(type="image.edit", input=edit))
    return job_id


def _finish(engine: Engine, user_id: str, job_id: str) -> None:
    story = Story(user_id, job_id)
    project(engine, [story.accepted(), story.queued(), story.started(), story.completed()])


async def test_a_finished_job_is_deleted_with_its_files(
    jobs_client: httpx.AsyncClient,
    api_engine: AsyncEngine,
    schema_engine: Engine,
    store: S3Client,
    api_settings: ApiSettings,
) -> None:
    alice = await sign_up(jobs_client, api_engine)
    user_id = str(alice.id)
    outputs, uploads = api_settings.s3.outputs_bucket, api_settings.s3.uploads_bucket
    upload_id = f"upl_{uuid.uuid4().hex}"
    with Session(schema_engine) as session, session.begin():
        session.execute(
            insert(Upload).values(
                id=upload_id,
                user_id=alice.id,
                key=upload_key(user_id, upload_id),
                content_type="image/png",
                size=3,
                status="ready",
                expires_at=datetime.now(UTC) + timedelta(hours=1),
            )
        )
    first = _edit_job(schema_engine, user_id, upload_id)
    second = _edit_job(schema_engine, user_id, upload_id)
    put: list[tuple[str, str]] = [
        (uploads, upload_key(user_id, upload_id)),
        (uploads, checked_upload_key(user_id, upload_id)),
        (outputs, f"outputs/{user_id}/{first}/0.png"),
        (outputs, f"outputs/{user_id}/{first}/preview-1-3.png"),
        (outputs, f"outputs/{user_id}/{second}/0.png"),
    ]
    try:
        for bucket, key in put:
            await store.put_object(Bucket=bucket, Key=key, Body=b"png")

        running = await jobs_client.post("/v1/jobs", json=SYNTHETIC, headers=alice.headers)
        refused = await jobs_client.delete(
            f"/v1/jobs/{running.json()['id']}", headers=alice.headers
        )
        assert is_problem(refused, 409)["type"] == "job_not_finished"

        _finish(schema_engine, user_id, first)
        _finish(schema_engine, user_id, second)
        deleted = await jobs_client.delete(f"/v1/jobs/{first}", headers=alice.headers)
        assert deleted.status_code == 204, deleted.text
        assert await _keys(store, outputs, f"outputs/{user_id}/{first}/") == []
        # The other job still uses the upload: it stays, as does that job's output.
        assert await _keys(store, uploads, f"uploads/{user_id}/") == [
            upload_key(user_id, upload_id)
        ]
        assert await _keys(store, outputs, f"outputs/{user_id}/{second}/") != []
        for gone in (
            await jobs_client.get(f"/v1/jobs/{first}", headers=alice.headers),
            await jobs_client.delete(f"/v1/jobs/{first}", headers=alice.headers),
            await jobs_client.get(f"/v1/jobs/{first}/webhooks", headers=alice.headers),
        ):
            assert gone.status_code == 404
        listed = (await jobs_client.get("/v1/jobs", headers=alice.headers)).json()["jobs"]
        assert first not in [job["id"] for job in listed]
        assert second in [job["id"] for job in listed]

        assert (
            await jobs_client.delete(f"/v1/jobs/{second}", headers=alice.headers)
        ).status_code == 204
        assert await _keys(store, uploads, f"uploads/{user_id}/") == []
        assert await _keys(store, uploads, f"checked/{user_id}/") == []
        with Session(schema_engine) as session:
            upload = session.get(Upload, upload_id)
            assert upload is not None
            assert upload.status == "invalid"
            row = session.get(Job, first)
            assert row is not None
            assert row.deleted_at is not None
    finally:
        for bucket, key in put:
            await store.delete_object(Bucket=bucket, Key=key)


async def test_an_api_keys_daily_cap_refuses_what_would_pass_it(
    jobs_client: httpx.AsyncClient, api_engine: AsyncEngine, schema_engine: Engine
) -> None:
    alice = await sign_up(jobs_client, api_engine)
    made = await jobs_client.post(
        "/v1/api-keys", json={"name": "app", "daily_credit_cap": 2}, headers=alice.headers
    )
    assert made.status_code == 201, made.text
    key = bearer(made.json()["key"])
    listed = (await jobs_client.get("/v1/api-keys", headers=alice.headers)).json()["items"]
    assert [item["daily_credit_cap"] for item in listed] == [2]

    async def submit(headers: dict[str, str]) -> httpx.Response:
        return await jobs_client.post("/v1/jobs", json=SYNTHETIC, headers=headers)

    # A synthetic job costs 1 credit.
    accepted = [await submit(key), await submit(key)]
    assert [answer.status_code for answer in accepted] == [202, 202]
    capped = is_problem(await submit(key), 429)
    assert capped["type"] == "spend_cap"
    assert (capped["cap"], capped["spent"], capped["cost"]) == (2, 2, 1)
    # The cap is the key's: the same user signed in submits on.
    assert (await submit(alice.headers)).status_code == 202
    # A job that was rejected cost nothing, and a released one what it was charged: 0.
    rejected: dict[str, Any] = {"status": "rejected"}
    with Session(schema_engine) as session, session.begin():
        session.execute(update(Job).where(Job.id == accepted[0].json()["id"]).values(**rejected))
    again = await submit(key)
    assert again.status_code == 202, again.text
    assert is_problem(await submit(key), 429)["type"] == "spend_cap"
