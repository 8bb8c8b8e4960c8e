"""Signed job webhooks on the real stack: lifecycle topic → PostgreSQL → a receiver on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from api.settings import ApiSettings
from api.webhooks.settings import WebhookSettings
from contracts import JobFailed, TopicSpec
from genstream.db import sync_engine
from genstream.settings import StackSettings
from producers import EventProducer
from tests.integration.api.accounts import bearer, client_with, login, register
from tests.integration.api.webhooks_harness import (
    Lifecycle,
    add_job,
    add_user,
    attempts,
    caught_up,
    completed,
    deliveries,
    dispatcher_parts,
    dispatcher_process,
    dispatcher_running,
    queued,
    started,
    status_of,
    webhook_settings,
)
from tests.polling import poll_until
from tests.unit.api.webhook_receiver import Answer, Receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def encryption_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def api_settings(api_settings: ApiSettings, encryption_key: str) -> ApiSettings:
    """The API's test settings, with the key that seals webhook secrets."""
    keyed = WebhookSettings(encryption_key=SecretStr(encryption_key))
    return api_settings.model_copy(update={"webhooks": keyed})


@pytest.fixture
def engine(stack: StackSettings, pg_schema: tuple[Engine, str]) -> Iterator[Engine]:
    _, schema = pg_schema
    engine = sync_engine(stack.pg, schema=schema)
    yield engine
    engine.dispose()


@pytest.fixture
def topic(make_topic: Callable[[str], TopicSpec]) -> TopicSpec:
    return make_topic("jobs.lifecycle")


@pytest.fixture
def lifecycle(stack: StackSettings, topic: TopicSpec) -> Iterator[Lifecycle]:
    producer = EventProducer(settings=stack.kafka)
    yield Lifecycle(producer=producer, topic=topic)
    producer.close()


@pytest.fixture
def settings(
    encryption_key: str, topic: TopicSpec, pg_schema: tuple[Engine, str], unique: str
) -> WebhookSettings:
    return webhook_settings(key=encryption_key, topic=topic, schema=pg_schema[1], unique=unique)


async def _account(api: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    user = await register(api)
    tokens = await login(api, user["email"])
    return user["id"], bearer(tokens["access_token"])


def _signature_verifies(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's check, from the Standard Webhooks spec and nothing of ours."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(expected, candidate)
        for candidate in headers["webhook-signature"].split(" ")
    )


async def test_terminal_event_is_posted_once_signed_with_the_owners_secret(
    stack: StackSettings,
    api: httpx.AsyncClient,
    engine: Engine,
    lifecycle: Lifecycle,
    settings: WebhookSettings,
) -> None:
    user_id, headers = await _account(api)
    secret = (await api.get("/v1/webhooks/secret", headers=headers)).json()["secret"]
    with Receiver() as receiver:
        job_id = add_job(engine, user_id, receiver.url())
        # Only the terminal event is announced; the others are read and passed over.
        lifecycle.send(queued(job_id), user_id)
        lifecycle.send(started(job_id), user_id)
        done = lifecycle.send(completed(job_id), user_id)
        with dispatcher_running(stack, engine, settings):
            [request] = receiver.wait_for(1)
            poll_until(lambda: caught_up(stack, settings.group_id, lifecycle.topic))
            poll_until(lambda: status_of(engine, job_id) == "delivered")
        assert len(receiver.received) == 1

    assert request.headers["webhook-id"] == done.id
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 120
    assert _signature_verifies(secret, request.headers, request.body)
    assert not _signature_verifies(secret, request.headers, request.body + b" ")
    assert "authorization" not in request.headers
    body = json.loads(request.body)
    assert body["type"] == "job.completed"
    assert body["data"]["job_id"] == job_id
    assert body["data"]["status"] == "completed"
    assert body["data"]["outputs"][0]["key"].endswith("/output.bin")

    log = (await api.get(f"/v1/jobs/{job_id}/webhooks", headers=headers)).json()
    [delivery] = log["deliveries"]
    assert delivery["event_id"] == done.id
    assert delivery["type"] == "job.completed"
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == (
        "delivered",
        1,
        200,
    )
    assert delivery["delivered_at"] is not None
    assert [entry["status_code"] for entry in delivery["log"]] == [200]
    assert "secret" not in json.dumps(log)

    _, stranger = await _account(api)
    answer = await api.get(f"/v1/jobs/{job_id}/webhooks", headers=stranger)
    assert answer.status_code == 404
    assert (await api.get(f"/v1/jobs/{job_id}/webhooks")).status_code == 401


async def test_failing_endpoint_gets_the_event_on_the_third_attempt(
    stack: StackSettings,
    api: httpx.AsyncClient,
    engine: Engine,
    lifecycle: Lifecycle,
    settings: WebhookSettings,
) -> None:
    user_id, headers = await _account(api)
    with Receiver([Answer(status=500), Answer(status=500)]) as receiver:
        job_id = add_job(engine, user_id, receiver.url())
        lifecycle.send(completed(job_id), user_id)
        with dispatcher_running(stack, engine, settings):
            requests = receiver.wait_for(3)
            poll_until(lambda: status_of(engine, job_id) == "delivered")
    # Every attempt is the same message: same id, same body.
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert len({r.body for r in requests}) == 1

    [delivery] = (await api.get(f"/v1/jobs/{job_id}/webhooks", headers=headers)).json()[
        "deliveries"
    ]
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 3
    assert [entry["attempt"] for entry in delivery["log"]] == [1, 2, 3]
    assert [entry["status_code"] for entry in delivery["log"]] == [500, 500, 200]
    assert delivery["log"][0]["error"] == "HTTP 5xx"


def test_redelivered_event_is_not_sent_again(
    stack: StackSettings,
    engine: Engine,
    lifecycle: Lifecycle,
    settings: WebhookSettings,
    unique: str,
) -> None:
    user_id = add_user(engine)
    with Receiver() as receiver:
        job_id = add_job(engine, user_id, receiver.url())
        done = lifecycle.send(completed(job_id), user_id)
        lifecycle.resend(done)
        with dispatcher_running(stack, engine, settings):
            receiver.wait_for(1)
            poll_until(lambda: caught_up(stack, settings.group_id, lifecycle.topic))
            poll_until(lambda: status_of(engine, job_id) == "delivered")
        # The whole topic read again from the start (offsets lost), plus a copy and a late,
        # different terminal event of the same job: still nothing new to send.
        lifecycle.resend(done)
        late = JobFailed(
            job_id=job_id, attempt=1, error_code="late", error_message="late", retryable=False
        )
        lifecycle.send(late, user_id)
        again = settings.model_copy(update={"group_id": f"test-webhooks-again-{unique}"})
        with dispatcher_running(stack, engine, again):
            poll_until(lambda: caught_up(stack, again.group_id, lifecycle.topic))
        assert len(receiver.received) == 1
    [delivery] = deliveries(engine, job_id)
    assert (delivery.event_id, delivery.status, delivery.attempts) == (done.id, "delivered", 1)


def test_client_errors_fail_at_once_and_server_errors_run_out_of_attempts(
    stack: StackSettings,
    engine: Engine,
    lifecycle: Lifecycle,
    settings: WebhookSettings,
) -> None:
    user_id = add_user(engine)
    limited = settings.model_copy(update={"max_attempts": 3})
    with (
        Receiver([Answer(status=404)]) as gone,
        Receiver([Answer(status=503)] * 10) as down,
    ):
        gone_job = add_job(engine, user_id, gone.url())
        down_job = add_job(engine, user_id, down.url())
        lifecycle.send(completed(gone_job), user_id)
        lifecycle.send(completed(down_job), user_id)
        jobs = (gone_job, down_job)

        def recorded() -> bool:
            return all(deliveries(engine, job) for job in jobs)

        def given_up() -> bool:
            return all(status_of(engine, job) == "failed" for job in jobs)

        # Step by step this time: record both, then send until both have given up.
        with dispatcher_parts(stack, engine, limited, threading.Event()) as (intake, dispatcher):
            assert intake.drain(until=recorded, timeout_s=30)
            assert dispatcher.drain(until=given_up, timeout_s=30)
        assert len(gone.received) == 1
        assert len(down.received) == 3
    [gone_delivery] = deliveries(engine, gone_job)
    assert (gone_delivery.attempts, gone_delivery.last_status_code) == (1, 404)
    [down_delivery] = deliveries(engine, down_job)
    assert (down_delivery.attempts, down_delivery.last_status_code) == (3, 503)
    assert down_delivery.next_attempt_at is None


def test_hung_endpoint_does_not_hold_up_other_deliveries(
    stack: StackSettings,
    engine: Engine,
    lifecycle: Lifecycle,
    settings: WebhookSettings,
) -> None:
    user_id = add_user(engine)
    slow = settings.model_copy(
        update={"workers": 2, "per_host_limit": 1, "request_timeout_s": 10.0, "lease_s": 30.0}
    )
    # Two loopback addresses are two hosts: 127.0.0.2 hangs, 127.0.0.1 answers.
    with (
        Receiver([Answer(hold=True)] * 5, host="127.0.0.2") as hung,
        Receiver() as healthy,
    ):
        hung_jobs = [add_job(engine, user_id, hung.url()) for _ in range(3)]
        healthy_job = add_job(engine, user_id, healthy.url())
        for job_id in hung_jobs:
            lifecycle.send(completed(job_id), user_id)
        lifecycle.send(completed(healthy_job), user_id)
        with dispatcher_running(stack, engine, slow):
            hung.wait_for(1)
            healthy.wait_for(1)
            poll_until(lambda: status_of(engine, healthy_job) == "delivered")
            # Delivered while the hung endpoint still holds its one request: no attempt to it
            # has finished, and it never had more than one worker.
            assert all(deliveries(engine, job)[0].attempts == 0 for job in hung_jobs)
            assert len(hung.received) == 1
            hung.release()


def test_dispatcher_killed_after_recording_delivers_once_after_restart(
    stack: StackSettings,
    engine: Engine,
    lifecycle: Lifecycle,
    settings: WebhookSettings,
    tmp_path: Path,
) -> None:
    user_id = add_user(engine)
    log = tmp_path / "webhooks.log"
    with Receiver() as receiver:
        job_id = add_job(engine, user_id, receiver.url())
        done = lifecycle.send(completed(job_id), user_id)

        # Recorded, not sent: an intake-only dispatcher, killed once the delivery is stored.
        recorder = dispatcher_process(stack, settings, log, "--role", "intake")
        try:
            poll_until(lambda: len(deliveries(engine, job_id)) == 1, timeout_s=60)
            assert recorder.poll() is None, log.read_text()
            recorder.send_signal(signal.SIGKILL)
        finally:
            recorder.kill()
            recorder.wait(30)
        [pending] = deliveries(engine, job_id)
        assert (pending.status, pending.attempts) == ("pending", 0)
        assert receiver.received == []

        restarted = dispatcher_process(stack, settings, log)
        try:
            [request] = receiver.wait_for(1, timeout_s=60)
            poll_until(lambda: status_of(engine, job_id) == "delivered")
            poll_until(lambda: caught_up(stack, settings.group_id, lifecycle.topic), timeout_s=60)
            restarted.send_signal(signal.SIGTERM)
            assert restarted.wait(60) == 0, log.read_text()
        finally:
            restarted.kill()
            restarted.wait(30)
        assert len(receiver.received) == 1
    assert request.headers["webhook-id"] == done.id
    [delivery] = deliveries(engine, job_id)
    assert [a.status_code for a in attempts(engine, delivery.id)] == [200]


async def test_owners_see_the_kind_of_failure_and_logs_no_query_string(
    stack: StackSettings,
    api: httpx.AsyncClient,
    engine: Engine,
    lifecycle: Lifecycle,
    settings: WebhookSettings,
    tmp_path: Path,
) -> None:
    user_id, headers = await _account(api)
    log = tmp_path / "webhooks.log"
    token = f"receiver-token-{os.urandom(8).hex()}"
    with Receiver([Answer(status=405, body=b"nginx: method not allowed")]) as receiver:
        url = receiver.url(f"/in/genstream?token={token}")
        job_id = add_job(engine, user_id, url)
        lifecycle.send(completed(job_id), user_id)
        dispatcher = dispatcher_process(stack, settings, log)
        try:
            [request] = receiver.wait_for(1, timeout_s=60)
            poll_until(lambda: status_of(engine, job_id) == "failed", timeout_s=60)
            dispatcher.send_signal(signal.SIGTERM)
            assert dispatcher.wait(60) == 0, log.read_text()
        finally:
            dispatcher.kill()
            dispatcher.wait(30)
    assert request.path == f"/in/genstream?token={token}"  # the receiver still gets it whole

    redacted = f"http://127.0.0.1:{receiver.port}/in/genstream?[redacted]"
    [delivery] = (await api.get(f"/v1/jobs/{job_id}/webhooks", headers=headers)).json()[
        "deliveries"
    ]
    assert delivery["url"] == redacted
    assert (delivery["last_status_code"], delivery["last_error"]) == (405, "HTTP 4xx")
    assert [entry["error"] for entry in delivery["log"]] == ["HTTP 4xx"]

    text = log.read_text()
    assert token not in text
    [entry] = [
        record
        for record in map(json.loads, text.splitlines())
        if record.get("delivery_id") == int(delivery["id"])
    ]
    assert (entry["url"], entry["status_code"], entry["error"]) == (redacted, 405, "HTTP 405")


def test_jobs_without_a_webhook_and_events_of_another_user_are_not_announced(
    stack: StackSettings,
    engine: Engine,
    lifecycle: Lifecycle,
    settings: WebhookSettings,
) -> None:
    owner, intruder = add_user(engine), add_user(engine)
    with Receiver() as receiver:
        quiet_job = add_job(engine, owner, None)
        job_id = add_job(engine, owner, receiver.url())
        lifecycle.send(completed(quiet_job), owner)
        lifecycle.send(completed(job_id), intruder)
        with dispatcher_running(stack, engine, settings):
            poll_until(lambda: caught_up(stack, settings.group_id, lifecycle.topic))
        assert receiver.received == []
    assert deliveries(engine, quiet_job) == []
    assert deliveries(engine, job_id) == []


async def test_secret_is_made_once_per_user_and_rotation_keeps_the_old_one_a_while(
    api: httpx.AsyncClient,
) -> None:
    _, headers = await _account(api)
    _, other = await _account(api)
    first = await api.get("/v1/webhooks/secret", headers=headers)
    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-store"
    secret = first.json()["secret"]
    assert secret.startswith("whsec_")
    assert (await api.get("/v1/webhooks/secret", headers=headers)).json()["secret"] == secret
    assert (await api.get("/v1/webhooks/secret", headers=other)).json()["secret"] != secret

    rotated = (await api.post("/v1/webhooks/secret/rotate", headers=headers)).json()
    assert rotated["secret"] not in (secret, None)
    assert rotated["rotated_at"] is not None
    assert rotated["previous_valid_until"] is not None
    assert (await api.get("/v1/webhooks/secret", headers=headers)).json()["secret"] == rotated[
        "secret"
    ]
    assert (await api.get("/v1/webhooks/secret")).status_code == 401


async def test_after_a_rotation_old_and_new_secrets_both_sign(
    stack: StackSettings,
    api: httpx.AsyncClient,
    engine: Engine,
    lifecycle: Lifecycle,
    settings: WebhookSettings,
) -> None:
    user_id, headers = await _account(api)
    old = (await api.get("/v1/webhooks/secret", headers=headers)).json()["secret"]
    new = (await api.post("/v1/webhooks/secret/rotate", headers=headers)).json()["secret"]
    with Receiver() as receiver:
        job_id = add_job(engine, user_id, receiver.url())
        lifecycle.send(completed(job_id), user_id)
        with dispatcher_running(stack, engine, settings):
            [request] = receiver.wait_for(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert _signature_verifies(new, request.headers, request.body)
    assert _signature_verifies(old, request.headers, request.body)


async def test_secret_endpoints_answer_503_without_an_encryption_key(
    api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    unkeyed = api_settings.model_copy(update={"webhooks": WebhookSettings()})
    async with client_with(unkeyed, api_engine) as client:
        _, headers = await _account(client)
        assert (await client.get("/v1/webhooks/secret", headers=headers)).status_code == 503
