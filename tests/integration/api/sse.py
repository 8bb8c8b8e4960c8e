"""Event stream tests' tools: API processes on loopback ports, and clients of their streams."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[3]


class ApiProcess:
    """``uvicorn`` serving the real app on a free loopback port it is handed already bound.

    Starting returns at once; ``wait_ready`` waits until it answers.
    """

    def __init__(self, env: dict[str, str], log: Path) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "uvicorn", "--factory",
                    "tests.integration.api.served:app",
                    "--fd", str(listener.fileno()),
                    "--log-level", "warning", "--timeout-graceful-shutdown", "2",
                ],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=output,
                stderr=subprocess.STDOUT,
                pass_fds=(listener.fileno(),),
            )  # fmt: skip
        listener.close()

    def wait_ready(self) -> ApiProcess:
        deadline = time.monotonic() + 60
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the API did not start:\n{self.log.read_text()}")
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def metric(self, name: str) -> float:
        """A counter or gauge of the process's /metrics (0 when it has no samples yet)."""
        for line in httpx.get(f"{self.url}/metrics", timeout=5).text.splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
        return 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


Launch = Callable[..., list[ApiProcess]]
"""``launch(count=1, **reads)``: API processes on the test's schema and topics, with these
``reads`` settings (``sse_poll_s="300"``, ...); the ``launch`` fixture stops them."""


@dataclass
class SseEvent:
    id: str | None = None
    event: str | None = None
    data: dict[str, Any] | None = None
    comments: list[str] = field(default_factory=list)


def parse_events(lines: list[str]) -> list[SseEvent]:
    """Events of ``text/event-stream`` lines (comment-only blocks included)."""
    events, current = [], SseEvent()
    for line in lines:
        if line == "":
            if current != SseEvent():
                events.append(current)
            current = SseEvent()
        elif line.startswith(":"):
            current.comments.append(line[1:].strip())
        elif line.startswith("id:"):
            current.id = line[3:].strip()
        elif line.startswith("event:"):
            current.event = line[6:].strip()
        elif line.startswith("data:"):
            current.data = json.loads(line[5:].strip())
    return events


class SseClient:
    """One open stream; ``until`` reads on until what was received satisfies a test."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.events: list[SseEvent] = []
        self.ended = False
        self._lines = response.aiter_lines()
        self._pending: list[str] = []

    async def _next(self) -> None:
        try:
            line = await self._lines.__anext__()
        except StopAsyncIteration:
            self.ended = True
            return
        if line == "":
            self.events += parse_events([*self._pending, ""])
            self._pending = []
        else:
            self._pending.append(line)

    async def until(
        self, check: Callable[[list[SseEvent]], bool], *, timeout_s: float = 30.0
    ) -> list[SseEvent]:
        async def read() -> None:
            while not check(self.events) and not self.ended:
                await self._next()

        await asyncio.wait_for(read(), timeout_s)
        assert check(self.events), f"the stream ended first; got {self.lifecycle_ids()}"
        return self.events

    def lifecycle(self) -> list[SseEvent]:
        return [e for e in self.events if e.event not in (None, "job.progress")]

    def lifecycle_ids(self) -> list[str]:
        return [e.id or "" for e in self.lifecycle()]

    def progress(self) -> list[SseEvent]:
        return [e for e in self.events if e.event == "job.progress"]

    def last_id(self) -> str | None:
        ids = [e.id for e in self.events if e.id is not None]
        return ids[-1] if ids else None

    async def opened(self) -> None:
        await self.until(lambda events: any("stream open" in e.comments for e in events))


@asynccontextmanager
async def stream(
    base_url: str, path: str, *, headers: dict[str, str] | None = None, **params: str
) -> AsyncIterator[SseClient]:
    """A stream that is open (its hub listening) by the time the block starts."""
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(60, read=60)) as client,
        client.stream("GET", path, headers=headers or {}, params=params) as response,
    ):
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        sse = SseClient(response)
        await sse.opened()
        yield sse
