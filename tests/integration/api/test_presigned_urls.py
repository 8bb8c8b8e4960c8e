"""The download URLs of ``GET /v1/jobs/{id}`` against the real S3 server: each opens its own
object only, and only until it expires.

That the URLs download their files, and that a key outside the job's prefix gets none, is
``test_jobs_read.py``'s; what the upload URLs take is ``test_uploads.py``'s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from api.settings import ApiSettings
from contracts import OutputFile
from genstream.db import sync_engine
from genstream.settings import StackSettings
from genstream.storage import S3Client
from tests.integration.api.accounts import bearer, client_with, login, register
from tests.integration.api.lifecycle import Story, add_job, add_user, project

_EXPIRY_DEADLINE_S = 30.0


@pytest.fixture
def schema_engine(stack: StackSettings, pg_schema: tuple[Engine, str]) -> Iterator[Engine]:
    engine = sync_engine(stack.pg, schema=pg_schema[1])
    yield engine
    engine.dispose()


@pytest.fixture
async def stored(s3: tuple[S3Client, str], stack: StackSettings) -> AsyncIterator[dict[str, bytes]]:
    """Objects put in the outputs bucket by the test; deleted afterwards."""
    client, _ = s3
    objects: dict[str, bytes] = {}
    yield objects
    if objects:
        await client.delete_objects(
            Bucket=stack.s3.outputs_bucket, Delete={"Objects": [{"Key": key} for key in objects]}
        )


async def _completed_job(
    api: httpx.AsyncClient,
    engine: Engine,
    s3: tuple[S3Client, str],
    stack: StackSettings,
    stored: dict[str, bytes],
) -> tuple[dict[str, Any], str]:
    """A user's completed job with two stored outputs; its body and the user's user id."""
    user = await register(api)
    headers = bearer((await login(api, user["email"]))["access_token"])
    story = Story(user["id"], add_job(engine, user["id"]))
    keys = [f"outputs/{user['id']}/{story.job_id}/{n}.png" for n in range(2)]
    for n, key in enumerate(keys):
        stored[key] = f"output {n} of {story.job_id}".encode()
        await s3[0].put_object(Bucket=stack.s3.outputs_bucket, Key=key, Body=stored[key])
    outputs = tuple(
        OutputFile(key=key, size=len(stored[key]), content_type="image/png") for key in keys
    )
    project(
        engine,
        [story.accepted(), story.queued(), story.started(), story.completed(outputs=outputs)],
    )
    response = await api.get(f"/v1/jobs/{story.job_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body, user["id"]


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=path))


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


async def test_a_download_url_opens_its_own_object_alone(
    api: httpx.AsyncClient,
    schema_engine: Engine,
    s3: tuple[S3Client, str],
    stack: StackSettings,
    stored: dict[str, bytes],
) -> None:
    job, user_id = await _completed_job(api, schema_engine, s3, stack, stored)
    first, second = job["outputs"]
    url = first["url"]
    path = urlsplit(url).path
    bucket = stack.s3.outputs_bucket
    # Another user's output that exists: a valid signature for it is what a forger lacks.
    someone_else = f"outputs/{add_user(schema_engine)}/job_x/0.png"
    stored[someone_else] = b"not yours"
    await s3[0].put_object(Bucket=bucket, Key=someone_else, Body=stored[someone_else])

    tampered = {
        "the job's other output": path.replace("/0.png", "/1.png"),
        "another user's output": f"/{bucket}/{someone_else}",
        "the same key in the uploads bucket": path.replace(bucket, stack.s3.uploads_bucket),
    }
    async with httpx.AsyncClient(timeout=30) as web:
        assert (await web.get(url)).content == stored[f"outputs/{user_id}/{job['id']}/0.png"]
        assert (await web.get(second["url"])).status_code == 200
        for what, other_path in tampered.items():
            refused = await web.get(_with_path(url, other_path))
            assert refused.status_code == 403, what
            assert "SignatureDoesNotMatch" in refused.text, what
        longer = await web.get(_with_query(url, **{"X-Amz-Expires": "604800"}))
        assert longer.status_code == 403
        assert "SignatureDoesNotMatch" in longer.text


async def test_a_download_url_is_refused_once_it_expires(
    api_settings: ApiSettings,
    api_engine: AsyncEngine,
    schema_engine: Engine,
    s3: tuple[S3Client, str],
    stack: StackSettings,
    stored: dict[str, bytes],
) -> None:
    # Below the setting's floor of 30 s, which model_copy does not check, so the test is short.
    reads = api_settings.reads.model_copy(update={"download_url_ttl_s": 3})
    async with client_with(api_settings.model_copy(update={"reads": reads}), api_engine) as api:
        before = datetime.now(UTC)
        job, _ = await _completed_job(api, schema_engine, s3, stack, stored)
    url = job["outputs"][0]["url"]
    expires_at = datetime.fromisoformat(str(job["urls_expire_at"]))
    assert before + timedelta(seconds=3) <= expires_at <= datetime.now(UTC) + timedelta(seconds=3)

    async with httpx.AsyncClient(timeout=30) as web:
        assert (await web.get(url)).status_code == 200
        deadline = time.monotonic() + _EXPIRY_DEADLINE_S
        while (answer := await web.get(url)).status_code == 200:
            assert time.monotonic() < deadline, "the URL still works"
            await asyncio.sleep(0.2)
    refused_at = datetime.now(UTC)
    assert answer.status_code == 403
    assert "expired" in answer.text.lower()
    # Refused once the time the client was told had come, and not long after; the store
    # counts whole seconds from the signing time.
    assert expires_at - timedelta(seconds=1) <= refused_at <= expires_at + timedelta(seconds=3)


async def test_urls_name_the_endpoint_clients_reach(
    api_settings: ApiSettings,
    api_engine: AsyncEngine,
    schema_engine: Engine,
    s3: tuple[S3Client, str],
    stack: StackSettings,
    stored: dict[str, bytes],
) -> None:
    """Behind a proxy or a public name the services' own address would not do: the host is
    signed into every presigned URL."""
    inside = urlsplit(stack.s3.endpoint_url)
    # The same server under another name, as a proxy in front of it would be.
    public = inside._replace(netloc=f"localhost:{inside.port}").geturl()
    s3_settings = api_settings.s3.model_copy(update={"public_endpoint_url": public})
    async with client_with(api_settings.model_copy(update={"s3": s3_settings}), api_engine) as api:
        job, user_id = await _completed_job(api, schema_engine, s3, stack, stored)
    download = job["outputs"][0]["url"]
    assert urlsplit(download).netloc == f"localhost:{inside.port}"
    async with httpx.AsyncClient(timeout=30) as web:
        fetched = await web.get(download)
        assert fetched.content == stored[f"outputs/{user_id}/{job['id']}/0.png"]
        # Sent to the services' address instead, the signature no longer matches.
        elsewhere = await web.get(urlsplit(download)._replace(netloc=inside.netloc).geturl())
        assert elsewhere.status_code == 403
        assert "SignatureDoesNotMatch" in elsewhere.text
