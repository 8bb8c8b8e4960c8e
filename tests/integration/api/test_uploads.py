"""Uploads on the real stack: presigned PUTs to the S3 server, checked when a job uses them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api.settings import ApiSettings
from contracts import JobRequested, MediaInfo, TopicSpec
from genstream.db.models import Upload
from genstream.settings import StackSettings
from genstream.storage import checked_upload_key, s3_client
from tests.integration.api.test_jobs_submit import (
    Account,
    event_producer,
    events_on,
    is_problem,
    jobs_api,
    jobs_settings,
    sign_up,
)
from tests.unit.api.test_upload_probe import image_bytes, make_video, png_header

MIB = 1024 * 1024


@pytest.fixture
async def client(
    api_settings: ApiSettings, api_engine: AsyncEngine, stack: StackSettings, requested: TopicSpec
) -> AsyncIterator[httpx.AsyncClient]:
    settings = jobs_settings(api_settings, requested)
    async with (
        event_producer(stack.kafka) as producer,
        jobs_api(settings, api_engine, producer) as client,
    ):
        yield client
    # Every object this test's uploads point at goes with the test.
    async with AsyncSession(api_engine) as session:
        rows = (await session.execute(select(Upload.key, Upload.user_id, Upload.id))).all()
    keys = [key for row in rows for key in (row.key, checked_upload_key(str(row.user_id), row.id))]
    if keys:
        async with s3_client(stack.s3) as s3:
            await s3.delete_objects(
                Bucket=stack.s3.uploads_bucket, Delete={"Objects": [{"Key": k} for k in keys]}
            )


async def _create(
    client: httpx.AsyncClient, account: Account, content_type: str, size: int
) -> httpx.Response:
    body = {"content_type": content_type, "size": size}
    return await client.post("/v1/uploads", json=body, headers=account.headers)


async def _put(upload: dict[str, Any], data: bytes, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as s3:
        return await s3.put(upload["upload_url"], content=data, headers=upload["headers"] | headers)


async def _upload(
    client: httpx.AsyncClient,
    account: Account,
    content_type: str,
    data: bytes,
) -> str:
    created = await _create(client, account, content_type, len(data))
    assert created.status_code == 201, created.text
    put = await _put(created.json(), data)
    assert put.status_code == 200, put.text
    upload_id: str = created.json()["id"]
    return upload_id


def _edit(upload_id: str) -> dict[str, Any]:
    return {"type": "image.edit", "input": {"upload_id": upload_id, "prompt": "stage the room"}}


def _enhance(upload_id: str, scale: int = 2) -> dict[str, Any]:
    return {"type": "video.enhance", "input": {"upload_id": upload_id, "scale": scale}}


async def _row(engine: AsyncEngine, upload_id: str) -> Upload:
    async with AsyncSession(engine) as session:
        upload = await session.get(Upload, upload_id)
    assert upload is not None
    return upload


async def test_a_png_goes_from_upload_to_the_jobs_event(
    client: httpx.AsyncClient, api_engine: AsyncEngine, stack: StackSettings, requested: TopicSpec
) -> None:
    alice = await sign_up(client, api_engine)
    png = image_bytes("PNG", 40, 24)
    created = await _create(client, alice, "image/png", len(png))

    assert created.status_code == 201, created.text
    upload = created.json()
    assert upload["id"].startswith("upl_")
    assert (upload["method"], upload["headers"]) == (
        "PUT",
        {"Content-Type": "image/png", "If-None-Match": "*"},
    )
    assert datetime.fromisoformat(upload["expires_at"]) > datetime.now(UTC)
    assert (await _put(upload, png)).status_code == 200

    submitted = await client.post("/v1/jobs", json=_edit(upload["id"]), headers=alice.headers)

    assert submitted.status_code == 202, submitted.text
    [event] = events_on(stack, requested, 1)
    assert isinstance(event.envelope.data, JobRequested)
    assert event.envelope.data.media == MediaInfo(
        content_type="image/png", size=len(png), width=40, height=24
    )
    row = await _row(api_engine, upload["id"])
    assert (row.status, row.key) == ("ready", f"uploads/{alice.id}/{upload['id']}")
    assert row.media == event.envelope.data.media.model_dump(mode="json")

    # A checked upload serves the next job as it is.
    again = await client.post("/v1/jobs", json=_edit(upload["id"]), headers=alice.headers)
    assert again.status_code == 202
    events_on(stack, requested, 2)


async def test_the_upload_url_takes_only_its_content_type(
    client: httpx.AsyncClient, api_engine: AsyncEngine
) -> None:
    alice = await sign_up(client, api_engine)
    png = image_bytes("PNG")
    created = await _create(client, alice, "image/png", len(png))
    refused = await _put(created.json(), png, **{"Content-Type": "text/html"})
    assert refused.status_code == 403


async def test_the_upload_url_takes_only_its_declared_size(
    client: httpx.AsyncClient, api_engine: AsyncEngine
) -> None:
    alice = await sign_up(client, api_engine)
    png = image_bytes("PNG")
    created = (await _create(client, alice, "image/png", len(png))).json()
    # Larger is what matters (the store would keep a file no limit was checked against),
    # but any other length breaks the signature.
    for other in (png + bytes(1024), png[:-1]):
        refused = await _put(created, other)
        assert refused.status_code == 403, len(other)
        assert "SignatureDoesNotMatch" in refused.text
    assert (await _put(created, png)).status_code == 200


async def test_a_jpeg_declared_as_png_is_refused(
    client: httpx.AsyncClient, api_engine: AsyncEngine, stack: StackSettings, requested: TopicSpec
) -> None:
    alice = await sign_up(client, api_engine)
    upload_id = await _upload(client, alice, "image/png", image_bytes("JPEG"))

    response = await client.post("/v1/jobs", json=_edit(upload_id), headers=alice.headers)

    problem = is_problem(response, 422)
    assert problem["type"] == "upload_invalid"
    assert problem["upload_id"] == upload_id
    assert "not image/png" in problem["detail"]
    row = await _row(api_engine, upload_id)
    assert row.status == "invalid"
    # The verdict stands: the next try is refused at once, for the same reason.
    retry = await client.post("/v1/jobs", json=_edit(upload_id), headers=alice.headers)
    assert is_problem(retry, 422)["detail"] == problem["detail"]
    events_on(stack, requested, 0)


async def test_an_image_claiming_absurd_dimensions_is_refused(
    client: httpx.AsyncClient, api_engine: AsyncEngine
) -> None:
    alice = await sign_up(client, api_engine)
    upload_id = await _upload(client, alice, "image/png", png_header(100_000, 100_000))
    problem = is_problem(
        await client.post("/v1/jobs", json=_edit(upload_id), headers=alice.headers), 422
    )
    assert "too many pixels" in problem["detail"]


async def test_a_stored_size_other_than_the_declared_one_is_refused(
    client: httpx.AsyncClient, api_engine: AsyncEngine, stack: StackSettings
) -> None:
    alice = await sign_up(client, api_engine)
    png = image_bytes("PNG")
    created = (await _create(client, alice, "image/png", len(png) + 10)).json()
    upload_id = created["id"]
    # Stored past the upload URL, which would refuse it: the check of a job's upload stays.
    async with s3_client(stack.s3) as s3:
        key = (await _row(api_engine, upload_id)).key
        await s3.put_object(
            Bucket=stack.s3.uploads_bucket, Key=key, Body=png, ContentType="image/png"
        )
    problem = is_problem(
        await client.post("/v1/jobs", json=_edit(upload_id), headers=alice.headers), 422
    )
    assert f"has {len(png)} bytes but the upload declared {len(png) + 10}" in problem["detail"]


async def test_an_mp4_is_measured_and_its_measurements_travel_with_the_job(
    client: httpx.AsyncClient,
    api_engine: AsyncEngine,
    stack: StackSettings,
    requested: TopicSpec,
    tmp_path: Path,
) -> None:
    alice = await sign_up(client, api_engine)
    mp4 = make_video(tmp_path / "clip.mp4", frames=18, fps=12, width=64, height=48)
    upload_id = await _upload(client, alice, "video/mp4", mp4)

    response = await client.post("/v1/jobs", json=_enhance(upload_id), headers=alice.headers)

    assert response.status_code == 202, response.text
    [event] = events_on(stack, requested, 1)
    assert isinstance(event.envelope.data, JobRequested)
    assert event.envelope.data.media == MediaInfo(
        content_type="video/mp4", size=len(mp4), duration_s=1.5, width=64, height=48
    )


async def test_a_truncated_mp4_is_refused(
    client: httpx.AsyncClient,
    api_engine: AsyncEngine,
    stack: StackSettings,
    requested: TopicSpec,
    tmp_path: Path,
) -> None:
    alice = await sign_up(client, api_engine)
    mp4 = make_video(tmp_path / "clip.mp4", frames=18)
    upload_id = await _upload(client, alice, "video/mp4", mp4[: len(mp4) * 2 // 3])

    problem = is_problem(
        await client.post("/v1/jobs", json=_enhance(upload_id), headers=alice.headers), 422
    )
    assert problem["type"] == "upload_invalid"
    assert (await _row(api_engine, upload_id)).status == "invalid"
    events_on(stack, requested, 0)


async def test_an_enhancement_beyond_the_plan_is_refused(
    client: httpx.AsyncClient, api_engine: AsyncEngine, tmp_path: Path
) -> None:
    free = await sign_up(client, api_engine)
    tall = make_video(tmp_path / "tall.mp4", frames=4, width=96, height=400)
    upload_id = await _upload(client, free, "video/mp4", tall)

    response = await client.post("/v1/jobs", json=_enhance(upload_id), headers=free.headers)

    problem = is_problem(response, 422)
    assert problem["type"] == "plan_limit"
    assert "800 pixels high" in problem["detail"]


@pytest.mark.parametrize(
    ("content_type", "size", "reason"),
    [
        ("image/png", 20 * MIB + 1, "at most 20971520 bytes"),
        ("video/mp4", 500 * MIB + 1, "at most 524288000 bytes"),
        ("image/gif", 100, "not accepted"),
        ("application/x-msdownload", 100, "not accepted"),
    ],
)
async def test_uploads_beyond_the_limits_are_refused_up_front(
    client: httpx.AsyncClient, api_engine: AsyncEngine, content_type: str, size: int, reason: str
) -> None:
    alice = await sign_up(client, api_engine)
    problem = is_problem(await _create(client, alice, content_type, size), 422)
    assert problem["type"] == "upload_invalid"
    assert reason in problem["detail"]


async def test_an_empty_upload_does_not_match_the_schema(
    client: httpx.AsyncClient, api_engine: AsyncEngine
) -> None:
    alice = await sign_up(client, api_engine)
    is_problem(await _create(client, alice, "image/png", 0), 422)


async def test_someone_elses_upload_does_not_exist_for_the_caller(
    client: httpx.AsyncClient, api_engine: AsyncEngine, stack: StackSettings, requested: TopicSpec
) -> None:
    alice, mallory = await sign_up(client, api_engine), await sign_up(client, api_engine)
    upload_id = await _upload(client, alice, "image/png", image_bytes("PNG"))

    response = await client.post("/v1/jobs", json=_edit(upload_id), headers=mallory.headers)

    assert is_problem(response, 404)["detail"] == "no such upload"
    unknown = await client.post("/v1/jobs", json=_edit("upl_nope"), headers=alice.headers)
    assert is_problem(unknown, 404)["detail"] == "no such upload"
    events_on(stack, requested, 0)


async def test_an_upload_is_usable_once_its_file_arrives(
    client: httpx.AsyncClient, api_engine: AsyncEngine
) -> None:
    alice = await sign_up(client, api_engine)
    png = image_bytes("PNG")
    created = (await _create(client, alice, "image/png", len(png))).json()

    early = await client.post("/v1/jobs", json=_edit(created["id"]), headers=alice.headers)
    assert "nothing has been uploaded yet" in is_problem(early, 422)["detail"]
    assert (await _row(api_engine, created["id"])).status == "pending"

    assert (await _put(created, png)).status_code == 200
    late = await client.post("/v1/jobs", json=_edit(created["id"]), headers=alice.headers)
    assert late.status_code == 202, late.text


async def test_a_video_is_no_image(
    client: httpx.AsyncClient, api_engine: AsyncEngine, tmp_path: Path
) -> None:
    alice = await sign_up(client, api_engine)
    upload_id = await _upload(client, alice, "video/mp4", make_video(tmp_path / "c.mp4", frames=2))
    problem = is_problem(
        await client.post("/v1/jobs", json=_edit(upload_id), headers=alice.headers), 422
    )
    assert "this job takes an image" in problem["detail"]


async def test_an_upload_url_creates_its_file_once(
    client: httpx.AsyncClient, api_engine: AsyncEngine
) -> None:
    alice = await sign_up(client, api_engine)
    png = image_bytes("PNG", 40, 24)
    created = (await _create(client, alice, "image/png", len(png))).json()
    assert (await _put(created, png)).status_code == 200

    # Same size, other content: refused by the store, before any check could be fooled.
    again = await _put(created, b"\xff\xd8\xff" + png[3:])
    assert again.status_code == 412, again.text
    without = await _put(
        {**created, "headers": {"Content-Type": "image/png"}}, b"\xff\xd8\xff" + png[3:]
    )
    # The store answers a signed header left out with 400 AccessDenied.
    assert without.status_code in {400, 403}, without.text
    assert "AccessDenied" in without.text, "If-None-Match is signed: it cannot be left out"


async def _sealed(stack: StackSettings, engine: AsyncEngine, upload_id: str) -> bytes:
    row = await _row(engine, upload_id)
    async with s3_client(stack.s3) as s3:
        response = await s3.get_object(
            Bucket=stack.s3.uploads_bucket, Key=checked_upload_key(str(row.user_id), upload_id)
        )
        async with response["Body"] as body:
            data: bytes = await body.read()
    return data


async def _swap(stack: StackSettings, engine: AsyncEngine, upload_id: str, data: bytes) -> None:
    """Replaces the upload behind every check, as a store that ignored the URL's terms might."""
    row = await _row(engine, upload_id)
    async with s3_client(stack.s3) as s3:
        await s3.put_object(
            Bucket=stack.s3.uploads_bucket, Key=row.key, Body=data, ContentType=row.content_type
        )


async def _jobs_around_a_swap(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    stack: StackSettings,
    requested: TopicSpec,
    *,
    content_type: str,
    checked: bytes,
    swapped: bytes,
) -> list[MediaInfo | None]:
    """A job on an upload, the upload swapped behind every check, then a second job: the
    ``media`` both jobs' events carry. The checked copy must still be ``checked``."""
    account = await sign_up(client, engine)
    upload_id = await _upload(client, account, content_type, checked)
    body = _edit(upload_id) if content_type.startswith("image/") else _enhance(upload_id)
    first = await client.post("/v1/jobs", json=body, headers=account.headers)
    assert first.status_code == 202, first.text

    await _swap(stack, engine, upload_id, swapped)
    second = await client.post("/v1/jobs", json=body, headers=account.headers)

    assert second.status_code == 202, second.text
    # What workers read is the checked copy, byte for byte.
    assert await _sealed(stack, engine, upload_id) == checked
    media: list[MediaInfo | None] = []
    for event in events_on(stack, requested, 2):
        assert isinstance(event.envelope.data, JobRequested)
        media.append(event.envelope.data.media)
    return media


async def test_an_image_swapped_after_its_check_is_not_what_jobs_run(
    client: httpx.AsyncClient, api_engine: AsyncEngine, stack: StackSettings, requested: TopicSpec
) -> None:
    small = image_bytes("PNG", 64, 64)
    # A header claiming 9000x9000 pixels, padded to the checked file's size.
    huge = png_header(9000, 9000)
    huge += bytes(len(small) - len(huge))

    media = await _jobs_around_a_swap(
        client, api_engine, stack, requested, content_type="image/png", checked=small, swapped=huge
    )

    checked = MediaInfo(content_type="image/png", size=len(small), width=64, height=64)
    assert media == [checked, checked]


async def test_a_video_swapped_after_its_check_is_not_what_jobs_run(
    client: httpx.AsyncClient,
    api_engine: AsyncEngine,
    stack: StackSettings,
    requested: TopicSpec,
    tmp_path: Path,
) -> None:
    short = make_video(tmp_path / "short.mp4", frames=24, fps=12)
    long = make_video(tmp_path / "long.mp4", frames=12 * 180, fps=12)

    media = await _jobs_around_a_swap(
        client, api_engine, stack, requested, content_type="video/mp4", checked=short, swapped=long
    )

    assert [m.duration_s if m is not None else None for m in media] == [2.0, 2.0]


async def test_a_checked_copy_lost_from_the_store_is_checked_again(
    client: httpx.AsyncClient, api_engine: AsyncEngine, stack: StackSettings
) -> None:
    alice = await sign_up(client, api_engine)
    png = image_bytes("PNG", 40, 24)
    upload_id = await _upload(client, alice, "image/png", png)
    assert (await client.post("/v1/jobs", json=_edit(upload_id), headers=alice.headers)).is_success
    async with s3_client(stack.s3) as s3:
        await s3.delete_object(
            Bucket=stack.s3.uploads_bucket, Key=checked_upload_key(str(alice.id), upload_id)
        )

    again = await client.post("/v1/jobs", json=_edit(upload_id), headers=alice.headers)

    assert again.status_code == 202, again.text
    assert await _sealed(stack, api_engine, upload_id) == png


async def test_uploads_are_limited_per_user(
    api_settings: ApiSettings, api_engine: AsyncEngine, stack: StackSettings, requested: TopicSpec
) -> None:
    settings = jobs_settings(api_settings, requested)
    settings = settings.model_copy(
        update={"uploads": settings.uploads.model_copy(update={"per_user": 3})}
    )
    async with (
        event_producer(stack.kafka) as producer,
        jobs_api(settings, api_engine, producer) as client,
    ):
        alice, bob = await sign_up(client, api_engine), await sign_up(client, api_engine)
        answers = [(await _create(client, alice, "image/png", 100)).status_code for _ in range(4)]
        limited = await _create(client, alice, "image/png", 100)
        other = await _create(client, bob, "image/png", 100)

    assert answers == [201, 201, 201, 429]
    assert is_problem(limited, 429)
    assert int(limited.headers["Retry-After"]) >= 1
    assert other.status_code == 201, "one user's uploads do not limit another's"
