"""Webhooks a job's owner subscribes to, with download links, and sending the last one again.

Lifecycle and progress topics of the test's own → the dispatcher's intake and delivery →
a receiver on loopback; outputs stored in the real object store and fetched through the
presigned URLs the bodies carry.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from api.app import create_app
from api.settings import ApiSettings
from api.webhooks.links import s3_signer
from api.webhooks.settings import WebhookSettings
from contracts import (
    Envelope,
    JobCompleted,
    JobEvent,
    JobPreview,
    JobProgress,
    OutputFile,
    TopicSpec,
)
from genstream.db import sync_engine
from genstream.db.models import Job
from genstream.settings import StackSettings
from genstream.storage import S3Client
from producers import EventProducer
from tests.integration.api.accounts import app_client, bearer, login, register
from tests.integration.api.webhooks_harness import (
    add_job,
    deliveries,
    dispatcher_parts,
    started,
    webhook_settings,
)
from tests.unit.api.webhook_receiver import Receiver

_PNG = b"\x89PNG\r\n\x1a\n-output-"


@pytest.fixture
def engine(stack: StackSettings, pg_schema: tuple[Engine, str]) -> Iterator[Engine]:
    engine = sync_engine(stack.pg, schema=pg_schema[1])
    yield engine
    engine.dispose()


@pytest.fixture
def topics(make_topic: Callable[[str], TopicSpec]) -> tuple[TopicSpec, TopicSpec]:
    return make_topic("jobs.lifecycle"), make_topic("jobs.progress")


@pytest.fixture
def settings(
    topics: tuple[TopicSpec, TopicSpec], pg_schema: tuple[Engine, str], unique: str
) -> WebhookSettings:
    lifecycle, progress = topics
    return webhook_settings(
        key=base64.b64encode(os.urandom(32)).decode(),
        topic=lifecycle,
        schema=pg_schema[1],
        unique=unique,
        progress_topic=progress.name,
    )


@pytest.fixture
async def api(
    api_settings: ApiSettings, api_engine: AsyncEngine, settings: WebhookSettings
) -> AsyncIterator[httpx.AsyncClient]:
    keyed = api_settings.model_copy(update={"webhooks": settings})
    async with app_client(create_app(keyed, engine=api_engine)) as client:
        yield client


@pytest.fixture
async def stored_output(stack: StackSettings) -> AsyncIterator[Callable[[str], Any]]:
    """Puts an output where a worker would; removes what it put afterwards."""
    from genstream.storage import s3_client

    keys: list[str] = []
    async with s3_client(stack.s3) as client:

        async def put(key: str) -> None:
            await _put(client, stack.s3.outputs_bucket, key)
            keys.append(key)

        yield put
        for key in keys:
            await client.delete_object(Bucket=stack.s3.outputs_bucket, Key=key)


async def _put(client: S3Client, bucket: str, key: str) -> None:
    await client.put_object(Bucket=bucket, Key=key, Body=_PNG, ContentType="image/png")


def _send(
    producer: EventProducer, topic: TopicSpec, data: JobEvent, user_id: str, at: datetime
) -> Envelope[Any]:
    envelope = Envelope.wrap(data, user_id=user_id, source="genstream/tests", time=at)
    producer.send_and_wait(topic, envelope)
    return envelope


def _progress(job_id: str, step: int) -> JobProgress:
    return JobProgress(job_id=job_id, attempt=1, percent=step * 10.0, step=step, total_steps=10)


async def test_subscribed_events_arrive_with_download_links_and_the_last_goes_again(
    stack: StackSettings,
    api: httpx.AsyncClient,
    engine: Engine,
    settings: WebhookSettings,
    topics: tuple[TopicSpec, TopicSpec],
    stored_output: Callable[[str], Any],
) -> None:
    user = await register(api)
    headers = bearer((await login(api, user["email"]))["access_token"])
    user_id = user["id"]
    prefix = f"outputs/{user_id}"
    with Receiver() as receiver:
        everything = add_job(engine, uuid.UUID(user_id), receiver.url("/all"))
        ends_only = add_job(engine, uuid.UUID(user_id), receiver.url("/ends"))
        with Session(engine) as session, session.begin():
            session.execute(
                update(Job)
                .where(Job.id == everything)
                .values(webhook_events=["started", "output", "progress", "completed"])
            )
        await stored_output(f"{prefix}/{everything}/0.png")
        await stored_output(f"{prefix}/{everything}/preview-1-3.png")
        start = datetime.now(UTC)
        lifecycle, progress = topics
        output = OutputFile(
            key=f"{prefix}/{everything}/0.png", size=len(_PNG), content_type="image/png"
        )
        with EventProducer(settings=stack.kafka) as producer:
            for job_id in (everything, ends_only):
                _send(producer, lifecycle, started(job_id), user_id, start)
                # Ten progress events in 0.9 s: at most two a second are announced.
                for step in range(10):
                    at = start + timedelta(seconds=0.1 * step)
                    _send(producer, progress, _progress(job_id, step), user_id, at)
            preview = JobPreview(
                job_id=everything,
                attempt=1,
                step=3,
                preview_key=f"{prefix}/{everything}/preview-1-3.png",
                content_type="image/png",
            )
            _send(producer, lifecycle, preview, user_id, start + timedelta(seconds=1))
            for job_id in (everything, ends_only):
                done = JobCompleted(
                    job_id=job_id,
                    attempt=1,
                    worker_id="worker-1",
                    outputs=(
                        output
                        if job_id == everything
                        else output.model_copy(update={"key": f"{prefix}/{job_id}/0.png"}),
                    ),
                    run_ms=900,
                    usage_units=1,
                )
                _send(producer, lifecycle, done, user_id, start + timedelta(seconds=2))
        signer = s3_signer(stack.s3, ttl_s=settings.download_url_ttl_s)
        wake = threading.Event()
        with dispatcher_parts(stack, engine, settings, wake, signer=signer) as (intake, dispatcher):
            # started, 2 of 10 progress, preview, completed; and the other job's end alone.
            assert intake.drain(
                until=lambda: _recorded(engine, everything, ends_only) == 6, timeout_s=30
            )
            assert dispatcher.drain(until=lambda: len(receiver.received) == 6, timeout_s=30)

            got = {(r.path, json.loads(r.body)["type"]) for r in receiver.received}
            kinds = sorted(
                json.loads(r.body)["type"] for r in receiver.received if r.path == "/all"
            )
            assert kinds == sorted(
                ["job.started", "job.progress", "job.progress", "job.preview", "job.completed"]
            )
            assert ("/ends", "job.completed") in got
            assert [kind for path, kind in got if path == "/ends"] == ["job.completed"]
            steps = sorted(
                json.loads(r.body)["data"]["step"]
                for r in receiver.received
                if json.loads(r.body)["type"] == "job.progress"
            )
            assert steps == [0, 5]

            [first] = [
                r
                for r in receiver.received
                if r.path == "/all" and json.loads(r.body)["type"] == "job.completed"
            ]
            completion = json.loads(first.body)
            [file] = completion["data"]["outputs"]
            assert file["key"] == output.key
            fetched = await _fetch(file["url"])
            assert (fetched.status_code, fetched.content) == (200, _PNG)
            expires = datetime.fromisoformat(completion["data"]["urls_expire_at"])
            assert expires - datetime.now(UTC) > timedelta(hours=23)
            [shown] = [
                json.loads(r.body)["data"]["preview"]
                for r in receiver.received
                if json.loads(r.body)["type"] == "job.preview"
            ]
            assert (await _fetch(shown["url"])).content == _PNG

            # Sent again on request: the same event, fresh links, one more attempt.
            again = await api.post(f"/v1/jobs/{everything}/webhooks/redeliver", headers=headers)
            assert again.status_code == 202, again.text
            assert (again.json()["type"], again.json()["status"]) == ("job.completed", "pending")
            assert dispatcher.drain(until=lambda: len(receiver.received) == 7, timeout_s=30)
            resent = receiver.received[-1]
            assert resent.headers["webhook-id"] == first.headers["webhook-id"]
            body = json.loads(resent.body)
            assert body["type"] == "job.completed"
            assert (await _fetch(body["data"]["outputs"][0]["url"])).content == _PNG
        log = (await api.get(f"/v1/jobs/{everything}/webhooks", headers=headers)).json()
        assert [d["attempts"] for d in log["deliveries"] if d["type"] == "job.completed"] == [2]

    # A job that has sent nothing has nothing to send again; a stranger's is not there.
    nothing = add_job(engine, uuid.UUID(user_id), None)
    refused = await api.post(f"/v1/jobs/{nothing}/webhooks/redeliver", headers=headers)
    assert (refused.status_code, refused.json()["type"]) == (409, "no_webhook_delivery")


async def _fetch(url: str) -> httpx.Response:
    """A GET as the receiver would make it, with nothing but the URL."""
    async with httpx.AsyncClient() as client:
        return await client.get(url)


def _recorded(engine: Engine, *job_ids: str) -> int:
    return sum(len(deliveries(engine, job_id)) for job_id in job_ids)
