"""``GET /v1/jobs`` and ``GET /v1/jobs/{id}`` over the read model the projection keeps."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from contracts import JobType, OutputFile, Tier
from genstream.db import sync_engine
from genstream.settings import StackSettings
from genstream.storage import S3Client
from tests.integration.api.accounts import bearer, login, register
from tests.integration.api.lifecycle import Story, add_job, add_user, project

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def schema_engine(stack: StackSettings, pg_schema: tuple[Engine, str]) -> Iterator[Engine]:
    engine = sync_engine(stack.pg, schema=pg_schema[1])
    yield engine
    engine.dispose()


async def _signed_in(api: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    user = await register(api)
    tokens = await login(api, user["email"])
    return user["id"], bearer(tokens["access_token"])


async def _all_pages(
    api: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await api.get("/v1/jobs", params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        jobs += page["jobs"]
        cursor = page["next_cursor"]
        if cursor is None:
            return jobs


async def test_the_list_pages_newest_first_and_filters(
    api: httpx.AsyncClient, schema_engine: Engine
) -> None:
    user, headers = await _signed_in(api)
    kinds = [JobType.SYNTHETIC, JobType.IMAGE_GENERATE] * 4
    created = {
        add_job(schema_engine, user, job_type=kind, created_at=T0 + timedelta(minutes=n)): n
        for n, kind in enumerate(kinds)
    }
    # Two jobs of one instant: the cursor tells them apart by id.
    created[add_job(schema_engine, user, created_at=T0 + timedelta(minutes=3))] = 3
    jobs = list(created)
    someone_else = add_user(schema_engine)
    add_job(schema_engine, someone_else, created_at=T0 + timedelta(minutes=2))
    finished = {jobs[1]: "completed", jobs[2]: "completed", jobs[5]: "failed"}
    for job_id, how in finished.items():
        story = Story(user, job_id)
        end = story.completed() if how == "completed" else story.failed()
        project(schema_engine, [story.accepted(), story.queued(), story.started(), end])

    newest_first = sorted(jobs, key=lambda job_id: (created[job_id], job_id), reverse=True)
    paged = await _all_pages(api, headers, limit=2)
    assert [job["id"] for job in paged] == newest_first
    assert paged[0]["links"]["self"] == f"/v1/jobs/{paged[0]['id']}"

    done = await _all_pages(api, headers, status="completed", limit=1)
    assert [job["id"] for job in done] == [jobs[2], jobs[1]]
    ended = await _all_pages(api, headers, status=["completed", "failed"])
    assert {job["id"] for job in ended} == set(finished)
    assert next(job for job in ended if job["id"] == jobs[5])["error"] == {
        "code": "permanent_error",
        "message": "the model refused",
    }
    images = await _all_pages(api, headers, type="image.generate")
    assert {job["id"] for job in images} == {jobs[n] for n in (1, 3, 5, 7)}
    window = await _all_pages(
        api,
        headers,
        created_after=(T0 + timedelta(minutes=3)).isoformat(),
        created_before=(T0 + timedelta(minutes=5)).isoformat(),
        limit=1,
    )
    assert {job["id"] for job in window} == {jobs[3], jobs[4], jobs[-1]}
    pending_synthetic = await _all_pages(api, headers, status="pending", type="synthetic")
    assert {job["id"] for job in pending_synthetic} == {jobs[0], jobs[4], jobs[6], jobs[-1]}


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"status": "done"}, 422),
        ({"type": "image.nope"}, 422),
        ({"created_after": "2026-01-01T00:00:00"}, 422),
        ({"created_after": "yesterday"}, 422),
        ({"created_before": "376"}, 422),
        ({"created_after": "1.7e9"}, 422),
        ({"created_after": "2026-02-01T00:00:00Z", "created_before": "2026-01-01T00:00:00Z"}, 422),
        ({"limit": 0}, 422),
        ({"limit": 201}, 422),
        ({"cursor": "!!"}, 400),
        ({"cursor": "MTIz"}, 400),
    ],
)
async def test_bad_filters_get_a_problem(
    api: httpx.AsyncClient, params: dict[str, Any], status: int
) -> None:
    _, headers = await _signed_in(api)
    response = await api.get("/v1/jobs", params=params, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == status


async def test_the_list_needs_a_caller(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/jobs")).status_code == 401


async def test_a_queued_job_shows_its_place_and_an_estimate(
    api: httpx.AsyncClient, schema_engine: Engine
) -> None:
    user, headers = await _signed_in(api)
    others = add_user(schema_engine)
    # History: three recent runs of the job type (median 2 s) on two workers.
    for worker, run_ms in (("w1", 1000), ("w2", 2000), ("w1", 3000)):
        story = Story(others, add_job(schema_engine, others))
        ran = [story.started(worker), story.completed(worker, run_ms=run_ms)]
        project(schema_engine, [story.accepted(), story.queued(), *ran])
    # Ahead in the same workload and tier: three; elsewhere: another tier, another workload.
    for tier, job_type in [(Tier.PRO, JobType.SYNTHETIC)] * 3 + [
        (Tier.FREE, JobType.SYNTHETIC),
        (Tier.PRO, JobType.IMAGE_GENERATE),
    ]:
        story = Story(others, add_job(schema_engine, others, job_type=job_type), tier=tier)
        project(schema_engine, [story.accepted(), story.queued()])
    mine = Story(user, add_job(schema_engine, user), start=datetime.now(UTC) + timedelta(minutes=1))
    project(schema_engine, [mine.accepted(), mine.queued()])
    behind = Story(
        others, add_job(schema_engine, others), start=datetime.now(UTC) + timedelta(minutes=2)
    )
    project(schema_engine, [behind.accepted(), behind.queued()])

    body = (await api.get(f"/v1/jobs/{mine.job_id}", headers=headers)).json()
    assert (body["status"], body["tier"], body["credits_reserved"]) == ("queued", "pro", 5)
    assert body["queue"] == {
        "position": 3,
        "workers": 2,
        "median_run_s": 2.0,
        "estimated_start_s": 3.0,
        "eta_s": 5.0,
        # The same work as the recent runs: their median time.
        "run_s": 2.0,
        "same_tier_ahead": 3,
    }
    assert body["queued_at"] is not None
    assert (body["outputs"], body["preview"], body["urls_expire_at"]) == ([], None, None)

    project(schema_engine, [mine.started("w9")])
    running = (await api.get(f"/v1/jobs/{mine.job_id}", headers=headers)).json()
    assert (running["status"], running["queue"], running["worker_id"]) == ("running", None, "w9")


async def test_outputs_and_previews_come_with_urls_that_download_them(
    api: httpx.AsyncClient,
    schema_engine: Engine,
    stack: StackSettings,
    s3: tuple[S3Client, str],
) -> None:
    client, _ = s3
    user, headers = await _signed_in(api)
    story = Story(user, add_job(schema_engine, user))
    base = f"outputs/{user}/{story.job_id}"
    stored = {f"{base}/0.png": b"\x89PNG-output", f"{base}/preview-1-2": b"\x89PNG-preview"}
    bucket = stack.s3.outputs_bucket
    try:
        for key, body in stored.items():
            await client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="image/png")
        elsewhere = f"outputs/{add_user(schema_engine)}/x/0.png"
        outputs = (
            OutputFile(key=f"{base}/0.png", size=11, content_type="image/png", width=8, height=8),
            # A key outside the job's own prefix never gets a URL.
            OutputFile(key=elsewhere, size=1, content_type="image/png"),
        )
        project(
            schema_engine,
            [
                story.accepted(), story.reserved(), story.queued(), story.started(),
                story.preview(2), story.completed(outputs=outputs, run_ms=700),
                story.settled(4, 1),
            ],
        )  # fmt: skip
        before = datetime.now(UTC)
        response = await api.get(f"/v1/jobs/{story.job_id}", headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["status"], body["run_ms"], body["attempt"]) == ("completed", 700, 1)
        assert (body["credits_reserved"], body["credits_charged"], body["error"]) == (5, 4, None)
        first, foreign = body["outputs"]
        assert (first["name"], first["size"], first["width"]) == ("0.png", 11, 8)
        assert foreign["url"] is None
        expires = datetime.fromisoformat(body["urls_expire_at"])
        ttl = timedelta(seconds=900)
        assert before + ttl - timedelta(seconds=5) <= expires <= datetime.now(UTC) + ttl
        async with httpx.AsyncClient() as web:
            assert (await web.get(first["url"])).content == stored[f"{base}/0.png"]
            preview = body["preview"]
            assert (preview["step"], preview["blurhash"]) == (2, "LEHV6nWB2yk8pyo0adR*.7kCMdnj")
            assert (await web.get(preview["url"])).content == stored[f"{base}/preview-1-2"]
    finally:
        await client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": key} for key in stored]}
        )

    _, stranger = await _signed_in(api)
    assert (await api.get(f"/v1/jobs/{story.job_id}", headers=stranger)).status_code == 404
