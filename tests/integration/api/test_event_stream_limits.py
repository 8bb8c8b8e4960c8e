"""One user's event streams cannot starve the API for everyone else, on the real stack.

A user holds a bounded number of streams open per process (and an API key its own share);
past it they are refused with 429. The streams a user holds read each stored event once
between them, sign its download links once, and read with a pool of their own, so another
user's requests keep their latency however many streams are attempted.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Final

import httpx
import pytest
from sqlalchemy import Engine

from api.problems import PROBLEM_JSON
from genstream.db import sync_engine
from genstream.settings import StackSettings
from tests.integration.api.accounts import bearer, login, register
from tests.integration.api.lifecycle import Story, add_job, project
from tests.integration.api.sse import ApiProcess, Launch, SseClient
from tests.polling import poll_until

_FLOOD: Final = 200
_CAP: Final = 10
_OTHER_USER_P99_S: Final = 1.0
_MIN_SAMPLES: Final = 50


@pytest.fixture
def schema_engine(stack: StackSettings, pg_schema: tuple[Engine, str]) -> Iterator[Engine]:
    engine = sync_engine(stack.pg, schema=pg_schema[1])
    yield engine
    engine.dispose()


async def _account(api: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    user = await register(api)
    tokens = await login(api, user["email"])
    return user["id"], bearer(tokens["access_token"])


async def _open(
    client: httpx.AsyncClient, streams: AsyncExitStack, path: str, headers: dict[str, str]
) -> SseClient | httpx.Response:
    """An open stream (closed with ``streams``), or the refusal, read and closed."""
    request = client.build_request("GET", path, headers=headers)
    response = await client.send(request, stream=True)
    if response.status_code != 200:
        await response.aread()
        await response.aclose()
        return response
    streams.push_async_callback(response.aclose)
    sse = SseClient(response)
    await sse.opened()
    return sse


def _refused_for_cap(response: httpx.Response | SseClient) -> bool:
    assert isinstance(response, httpx.Response), "a stream was admitted past the cap"
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["type"] == "too_many_streams"
    assert int(response.headers["retry-after"]) >= 1
    return True


def _opens(process: ApiProcess, path: str, headers: dict[str, str]) -> bool:
    """Whether a stream opens now (closed at once, which frees its slot again)."""
    with httpx.stream("GET", f"{process.url}{path}", headers=headers, timeout=10) as response:
        return response.status_code == 200


class _Latencies:
    """``GET /v1/me`` of one user, one request after another, until ``stop``.

    From a thread and a client of its own, so that what is measured is the API's answer and
    not this process's loop, busy with the flood.
    """

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.seconds: list[float] = []
        self._base_url = base_url
        self._headers = headers
        self._stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self._base_url, timeout=60) as client:
            while not self._stop.is_set() or len(self.seconds) < _MIN_SAMPLES:
                began = time.perf_counter()
                response = client.get("/v1/me", headers=self._headers)
                self.seconds.append(time.perf_counter() - began)
                assert response.status_code == 200, response.text

    def stop(self) -> None:
        self._stop.set()

    def quantile(self, q: float) -> float:
        return statistics.quantiles(self.seconds, n=100, method="inclusive")[round(q * 100) - 1]


async def test_a_flood_of_streams_from_one_user_leaves_another_user_their_latency(
    api: httpx.AsyncClient, schema_engine: Engine, launch: Launch
) -> None:
    flooder, flooder_headers = await _account(api)
    _, other_headers = await _account(api)
    stories = [Story(flooder, add_job(schema_engine, flooder)) for _ in range(4)]
    # Only notifications announce news here: every read of the streams' is one of theirs.
    (process,) = launch(sse_poll_s="300")
    limits = httpx.Limits(max_connections=_FLOOD + 10, max_keepalive_connections=_FLOOD + 10)
    timeout = httpx.Timeout(60, read=60)

    async with (
        httpx.AsyncClient(base_url=process.url, timeout=timeout, limits=limits) as flood,
        AsyncExitStack() as streams,
    ):
        latencies = _Latencies(process.url, other_headers)
        measuring = asyncio.create_task(asyncio.to_thread(latencies.run))
        attempts = await asyncio.gather(
            *(_open(flood, streams, "/v1/events", flooder_headers) for _ in range(_FLOOD))
        )
        admitted = [a for a in attempts if isinstance(a, SseClient)]
        refused = [a for a in attempts if not isinstance(a, SseClient)]

        # Each event its own transaction, so its own notification: as many rounds of reads
        # as events, on every admitted stream.
        expected: list[str] = []
        for story in stories:
            for event in (
                story.accepted(),
                story.queued(),
                story.started(),
                story.preview(1),
                story.completed(),
            ):
                await asyncio.to_thread(project, schema_engine, [event])
                expected.append(event.id)
        await asyncio.gather(
            *(
                sse.until(lambda _, sse=sse: len(sse.lifecycle()) >= len(expected))
                for sse in admitted
            )
        )
        latencies.stop()
        await measuring

        p50, p99 = latencies.quantile(0.50), latencies.quantile(0.99)
        print(  # the figures, for whoever runs this with -s
            f"\nstreams admitted {len(admitted)}, refused {len(refused)}; other user's GET /v1/me"
            f" over {len(latencies.seconds)} requests: p50 {p50 * 1000:.1f} ms,"
            f" p99 {p99 * 1000:.1f} ms, max {max(latencies.seconds) * 1000:.1f} ms"
        )
        assert len(admitted) == _CAP
        assert all(_refused_for_cap(response) for response in refused)
        assert p99 < _OTHER_USER_P99_S, f"p50 {p50:.3f} s, p99 {p99:.3f} s"
        for sse in admitted:
            assert [e.data["id"] for e in sse.lifecycle() if e.data] == expected
            completed = [e.data for e in sse.lifecycle() if e.event == "job.completed" and e.data]
            assert all(data["urls"] for data in completed)
        # One read per notification and one signing per preview or output, for all the
        # user's streams together; none read history of their own (they started from now).
        reads = 'genstream_sse_stored_reads_total{reading="news"}'
        assert process.metric(reads) <= 1 + len(expected)
        assert process.metric('genstream_sse_stored_reads_total{reading="history"}') == 0
        assert process.metric("genstream_sse_links_signed_total") == 2 * len(stories)
        assert process.metric('genstream_sse_refused_total{cap="user"}') == len(refused)

        # A stream that closes gives its slot back.
        assert not await asyncio.to_thread(_opens, process, "/v1/events", flooder_headers)
        await admitted[0].response.aclose()
        await asyncio.to_thread(
            poll_until,
            lambda: _opens(process, "/v1/events", flooder_headers),
            what="a stream to open once another closed",
        )
    poll_until(
        lambda: process.metric("genstream_sse_streams") == 0, what="every stream to be closed"
    )
    assert _opens(process, "/v1/events", flooder_headers)


async def test_an_api_key_holds_its_own_share_of_its_users_streams(
    api: httpx.AsyncClient, schema_engine: Engine, launch: Launch
) -> None:
    user, headers = await _account(api)
    keys = [
        (await api.post("/v1/api-keys", json={"name": f"k{n}"}, headers=headers)).json()["key"]
        for n in range(2)
    ]
    job = f"/v1/jobs/{add_job(schema_engine, user)}/events"
    (process,) = launch(sse_streams_per_user="3", sse_streams_per_api_key="2")

    async with (
        httpx.AsyncClient(base_url=process.url, timeout=httpx.Timeout(60, read=60)) as client,
        AsyncExitStack() as streams,
    ):
        first = bearer(keys[0])
        # Streams of one job count as the user's streams too.
        opened = [
            await _open(client, streams, "/v1/events", first),
            await _open(client, streams, job, first),
        ]
        assert all(isinstance(sse, SseClient) for sse in opened)
        past_key = await _open(client, streams, "/v1/events", first)
        assert _refused_for_cap(past_key)
        assert isinstance(past_key, httpx.Response)
        assert "per API key" in past_key.json()["detail"]
        # Kept: a client dropped is a stream closed, and its slot given back.
        opened.append(await _open(client, streams, job, bearer(keys[1])))
        assert isinstance(opened[-1], SseClient)
        past_user = await _open(client, streams, "/v1/events", headers)
        assert _refused_for_cap(past_user)
        assert isinstance(past_user, httpx.Response)
        assert "per user" in past_user.json()["detail"]
    assert process.metric('genstream_sse_refused_total{cap="api_key"}') == 1
    assert process.metric('genstream_sse_refused_total{cap="user"}') == 1
    poll_until(
        lambda: process.metric("genstream_sse_streams") == 0, what="every stream to be closed"
    )
    assert _opens(process, "/v1/events", bearer(keys[0]))
