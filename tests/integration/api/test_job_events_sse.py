"""Server-Sent Events on the real stack, from API processes run by uvicorn.

Lifecycle events reach the streams through the projection (PostgreSQL, ``NOTIFY``);
progress through each process's own reader of the progress topic.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from api.projection.projector import Projection
from contracts import Envelope, JobProgress, TopicSpec
from genstream.db import sync_engine
from genstream.settings import StackSettings
from producers import EventProducer
from tests.integration.api.accounts import bearer, login, register
from tests.integration.api.lifecycle import Story, add_job, add_user, project
from tests.integration.api.sse import Launch, SseEvent, parse_events, stream


@pytest.fixture
def schema_engine(stack: StackSettings, pg_schema: tuple[Engine, str]) -> Iterator[Engine]:
    engine = sync_engine(stack.pg, schema=pg_schema[1])
    yield engine
    engine.dispose()


@pytest.fixture
def producer(stack: StackSettings) -> Iterator[EventProducer]:
    with EventProducer(settings=stack.kafka) as events:
        yield events


async def _account(api: httpx.AsyncClient) -> tuple[str, str, dict[str, str]]:
    user = await register(api)
    tokens = await login(api, user["email"])
    return user["id"], tokens["access_token"], bearer(tokens["access_token"])


def _progress(story: Story, step: int, message: str = "") -> Envelope[Any]:
    data = JobProgress(
        job_id=story.job_id,
        attempt=1,
        percent=min(100.0, float(step)),
        step=step,
        total_steps=max(step, 100),
        message=message or None,
    )
    return Envelope.wrap(data, user_id=story.user_id, source="genstream/tests")


def _send(producer: EventProducer, topic: TopicSpec, envelopes: list[Envelope[Any]]) -> None:
    for envelope in envelopes:
        producer.produce(topic, envelope)
    assert producer.flush(30) == 0


def _types(events: list[SseEvent]) -> list[str | None]:
    return [event.event for event in events]


async def test_a_stream_resumes_on_another_process_without_losing_an_event(
    api: httpx.AsyncClient,
    schema_engine: Engine,
    launch: Launch,
    producer: EventProducer,
    progress_topic: TopicSpec,
) -> None:
    user, token, headers = await _account(api)
    story = Story(user, add_job(schema_engine, user))
    first, second = launch(2)
    project(schema_engine, [story.accepted(), story.queued()])
    path = f"/v1/jobs/{story.job_id}/events"

    async with stream(first.url, path, access_token=token) as sse:
        await sse.until(lambda _: len(sse.lifecycle()) == 2)
        assert _types(sse.lifecycle()) == ["job.accepted", "job.queued"]
        # Idle streams get heartbeats (every second here).
        await sse.until(lambda events: any("heartbeat" in e.comments for e in events))
        project(schema_engine, [story.started()])
        await sse.until(lambda _: len(sse.lifecycle()) == 3)
        _send(producer, progress_topic, [_progress(story, 10), _progress(story, 20)])
        await sse.until(lambda _: len(sse.progress()) == 2)
        started_seq = sse.lifecycle()[-1].id
        assert [e.id for e in sse.progress()] == [f"{started_seq}.1", f"{started_seq}.2"]
        assert [e.data["data"]["step"] for e in sse.progress() if e.data] == [10, 20]
        last_seen = sse.last_id()
    seqs = [int(i) for i in sse.lifecycle_ids()]
    assert seqs == sorted(seqs)

    # While nobody listens the job goes on and ends.
    project(schema_engine, [story.preview(5), story.completed()])
    assert last_seen is not None
    async with stream(second.url, path, headers={**headers, "Last-Event-ID": last_seen}) as again:
        await again.until(lambda _: again.ended, timeout_s=30)
    assert _types(again.lifecycle()) == ["job.preview", "job.completed"]
    preview, completed = again.lifecycle()
    assert preview.data is not None
    assert completed.data is not None
    assert list(preview.data["urls"]) == [preview.data["data"]["preview_key"]]
    assert list(completed.data["urls"]) == [completed.data["data"]["outputs"][0]["key"]]
    assert int(preview.id or 0) > seqs[-1]

    # Past the end there is nothing more: 204 tells EventSource to stop reconnecting.
    async with httpx.AsyncClient(base_url=first.url) as client:
        done = await client.get(path, headers={**headers, "Last-Event-ID": completed.id or ""})
        assert done.status_code == 204
        # The all-jobs stream resumes too, by query parameter.
        async with stream(
            first.url, "/v1/events", headers=headers, last_event_id=last_seen
        ) as all_jobs:
            await all_jobs.until(lambda _: len(all_jobs.lifecycle()) == 2)
        assert _types(all_jobs.lifecycle()) == ["job.preview", "job.completed"]


async def test_two_processes_each_stream_every_event_to_their_clients(
    api: httpx.AsyncClient,
    schema_engine: Engine,
    launch: Launch,
    producer: EventProducer,
    progress_topic: TopicSpec,
) -> None:
    user, _, headers = await _account(api)
    stranger = add_user(schema_engine)
    stories = [Story(user, add_job(schema_engine, user)) for _ in range(4)]
    hidden = Story(stranger, add_job(schema_engine, stranger))
    # Polls too rare to matter: everything must come through notifications.
    processes = launch(2, sse_poll_s="300")

    async with (
        stream(processes[0].url, "/v1/events", headers=headers) as one,
        stream(processes[1].url, "/v1/events", headers=headers) as two,
    ):
        expected: list[str] = []
        for round_ in range(3):
            batch = [
                event
                for story in stories
                for event in (
                    [story.accepted(), story.queued()] if round_ == 0
                    else [story.started()] if round_ == 1
                    else [story.completed()]
                )
            ]  # fmt: skip
            project(schema_engine, batch[: len(batch) // 2])
            project(schema_engine, [*batch[len(batch) // 2 :], hidden.accepted()])
            expected += [e.id for e in batch]
            _send(producer, progress_topic, [_progress(s, round_ + 1) for s in [*stories, hidden]])
        for sse in (one, two):
            await sse.until(
                lambda _, sse=sse: (
                    len(sse.lifecycle()) == len(expected)
                    and len(sse.progress()) == 3 * len(stories)
                )
            )
    for sse in (one, two):
        assert [e.data["id"] for e in sse.lifecycle() if e.data] == expected
        seqs = [int(i) for i in sse.lifecycle_ids()]
        assert seqs == sorted(seqs)
        assert {e.data["job_id"] for e in sse.events if e.data} == {s.job_id for s in stories}
    assert one.lifecycle_ids() == two.lifecycle_ids()


async def test_the_poll_catches_events_no_notification_announced(
    api: httpx.AsyncClient, schema_engine: Engine, launch: Launch
) -> None:
    user, _, headers = await _account(api)
    story = Story(user, add_job(schema_engine, user))
    (process,) = launch()
    async with stream(process.url, f"/v1/jobs/{story.job_id}/events", headers=headers) as sse:
        with schema_engine.begin() as connection:
            Projection(notify=False)(connection, [story.accepted(), story.queued()])
        await sse.until(lambda _: len(sse.lifecycle()) == 2, timeout_s=15)
    assert _types(sse.lifecycle()) == ["job.accepted", "job.queued"]


def _read_raw(sock: socket.socket, *, until: bytes, timeout_s: float = 30.0) -> bytes:
    sock.settimeout(timeout_s)
    received = b""
    while until not in received:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return received


def _drain(sock: socket.socket, timeout_s: float = 30.0) -> bytes:
    """Everything until the server closes the stream (or ends the response)."""
    sock.settimeout(timeout_s)
    received = b""
    while not received.endswith(b"\r\n0\r\n\r\n"):
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return received


def _dechunk(raw: bytes) -> list[str]:
    """SSE lines of a chunked HTTP response (headers skipped)."""
    body = raw.split(b"\r\n\r\n", 1)[1]
    data = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        if not size_line or not rest:
            break
        size = int(size_line, 16)
        data, body = data + rest[:size], rest[size + 2 :]
        if size == 0:
            break
    return data.decode(errors="replace").split("\n")


async def test_a_slow_client_is_cut_off_and_never_slows_the_others(
    api: httpx.AsyncClient,
    schema_engine: Engine,
    launch: Launch,
    producer: EventProducer,
    progress_topic: TopicSpec,
) -> None:
    user, _, headers = await _account(api)
    story = Story(user, add_job(schema_engine, user))
    (process,) = launch(sse_client_buffer="400")
    project(schema_engine, [story.accepted(), story.queued(), story.started()])

    # A client that reads its first bytes, then nothing: a tiny receive window, soon full.
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", process.port))
    request = (
        f"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {headers['Authorization']}\r\nAccept: text/event-stream\r\n\r\n"
    )
    slow.sendall(request.encode())
    head = await asyncio.to_thread(_read_raw, slow, until=b"stream open")
    assert b" 200 " in head.split(b"\r\n", 1)[0]

    # The server's socket buffers take a few megabytes before the stream's own buffer
    # fills: large events in bursts below the buffer's size get there sooner.
    padding = "x" * 500
    sent = 0
    projected: list[str] = []
    async with stream(process.url, "/v1/events", headers=headers) as fast:
        for round_ in range(60):
            if round_ == 2:
                preview = story.preview(1)
                project(schema_engine, [preview])
                projected.append(preview.id)
            batch = [_progress(story, sent + n, padding) for n in range(300)]
            await asyncio.to_thread(_send, producer, progress_topic, batch)
            sent += len(batch)
            # The fast client keeps up whatever the slow one does.
            await fast.until(lambda _, sent=sent: len(fast.progress()) == sent, timeout_s=20)
            if process.metric("genstream_sse_overflow_disconnects_total") >= 1:
                break
        else:
            pytest.fail("the slow client was never cut off")
        completed = story.completed()
        project(schema_engine, [completed])
        projected.append(completed.id)
        await fast.until(lambda _: len(fast.lifecycle()) == 2)
    assert [e.data["id"] for e in fast.lifecycle() if e.data] == projected

    raw = head + await asyncio.to_thread(_drain, slow)
    slow.close()
    cut_off = parse_events(_dechunk(raw))
    got = [e for e in cut_off if e.event == "job.progress"]
    assert len(got) < sent, "the slow client was sent less than the others"
    last = next(e.id for e in reversed(cut_off) if e.id is not None)
    # Resuming from its last id replays every lifecycle event it had not seen.
    async with stream(
        process.url, "/v1/events", headers={**headers, "Last-Event-ID": last}
    ) as again:
        seen = {e.data["id"] for e in cut_off if e.data and e.event != "job.progress"}
        await again.until(
            lambda _: seen | {e.data["id"] for e in again.lifecycle() if e.data} >= set(projected)
        )
    assert process.metric("genstream_sse_streams") == 0


async def test_streams_check_who_asks_and_where_they_resume(
    api: httpx.AsyncClient, schema_engine: Engine
) -> None:
    user, token, headers = await _account(api)
    job_id = add_job(schema_engine, user)
    _, _, other = await _account(api)
    key = (await api.post("/v1/api-keys", json={"name": "k"}, headers=headers)).json()["key"]
    path = f"/v1/jobs/{job_id}/events"

    assert (await api.get(path)).status_code == 401
    assert (await api.get("/v1/events", params={"access_token": "nonsense"})).status_code == 401
    refused = await api.get("/v1/events", params={"access_token": key})
    assert refused.status_code == 401
    assert "Authorization header" in refused.json()["detail"]
    assert (await api.get(path, headers=other)).status_code == 404
    for bad in ("abc", "1.0", "-1", "99999999"):
        response = await api.get(path, headers={**headers, "Last-Event-ID": bad})
        assert response.status_code == 400, bad
        assert response.json()["type"] == "invalid_event_id"
    assert token
