"""The demo ``make dev`` runs: a user submits an image job and a speech job through the REST
API and watches them to the end through Server-Sent Events, as an app would."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx

TERMINAL = frozenset(
    {"job.completed", "job.failed", "job.cancelled", "job.expired", "job.rejected"}
)
BAR = 30

JOBS: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "image.generate",
        {
            "prompt": "a sunlit living room with a green sofa, virtual staging",
            "width": 256,
            "height": 256,
            "steps": 20,
            "seed": 42,
        },
    ),
    (
        "audio.speech",
        {"text": "Welcome to genstream. Your image and your voice-over are ready."},
    ),
)


@dataclass
class Watched:
    job_type: str
    job_id: str
    status: str = "pending"
    percent: float = 0.0
    detail: str = ""
    events: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return f"job.{self.status}" in TERMINAL

    def line(self) -> str:
        filled = round(BAR * self.percent / 100)
        bar = "#" * filled + "-" * (BAR - filled)
        return (
            f"  {self.job_type:<15} [{bar}] {self.percent:5.1f}%  {self.status:<10} {self.detail}"
        )


class Board:
    """Progress bars redrawn in place on a terminal, or a line per change elsewhere."""

    def __init__(self, jobs: list[Watched], out: TextIO) -> None:
        self._jobs, self._out = jobs, out
        self._tty = out.isatty()
        self._drawn = False
        self._last: list[str] = []

    def draw(self) -> None:
        lines = [job.line() for job in self._jobs]
        if self._tty:
            if self._drawn:
                self._out.write(f"\x1b[{len(lines)}F")
            self._out.write("".join(f"\x1b[2K{line}\n" for line in lines))
            self._drawn = True
        else:
            for line, before in zip(lines, self._last or [""] * len(lines), strict=True):
                if line != before:
                    self._out.write(line + "\n")
        self._last = lines
        self._out.flush()


async def _sse(client: httpx.AsyncClient, path: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event name, data) of a Server-Sent Events stream."""
    async with client.stream("GET", path, headers={"Accept": "text/event-stream"}) as response:
        response.raise_for_status()
        name, data = "message", ""
        async for line in response.aiter_lines():
            if line == "":
                if data:
                    yield name, json.loads(data)
                name, data = "message", ""
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()


async def _watch(client: httpx.AsyncClient, job: Watched, board: Board) -> None:
    async for name, body in _sse(client, f"/v1/jobs/{job.job_id}/events"):
        data = body.get("data", {})
        if name == "job.progress":
            job.percent = max(job.percent, float(data.get("percent", 0)))
        elif name.startswith("job."):
            job.events.append(name)
            job.status = name.removeprefix("job.")
            if name == "job.started":
                job.status = "running"
            elif name == "job.preview":
                job.status, job.detail = "running", "preview ready"
            elif name == "job.failed":
                job.detail = str(data.get("error_message", ""))[:60]
            elif name == "job.rejected":
                job.detail = str(data.get("reason", ""))
        if job.status == "completed":
            job.percent = 100.0
        board.draw()
        if job.done:
            return


async def _sign_up(client: httpx.AsyncClient) -> None:
    email, password = f"demo-{uuid.uuid4().hex[:10]}@example.com", uuid.uuid4().hex
    registered = await client.post("/v1/auth/register", json={"email": email, "password": password})
    registered.raise_for_status()
    token = await client.post("/v1/auth/token", data={"username": email, "password": password})
    token.raise_for_status()
    client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    print(f"signed up {email} (the sign-up grant pays for the demo)")


async def _demo(api_url: str, timeout_s: float, out: TextIO) -> int:
    async with httpx.AsyncClient(base_url=api_url, timeout=httpx.Timeout(30, read=None)) as client:
        await _sign_up(client)
        watched = []
        for job_type, job_input in JOBS:
            response = await client.post(
                "/v1/jobs",
                json={"type": job_type, "input": job_input},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            if response.status_code not in (200, 202):
                print(f"{job_type} was refused: {response.status_code} {response.text}")
                return 1
            watched.append(Watched(job_type, response.json()["id"]))
        print("submitted; live progress from /v1/jobs/{id}/events:")
        board = Board(watched, out)
        board.draw()
        try:
            await asyncio.wait_for(
                asyncio.gather(*(_watch(client, job, board) for job in watched)), timeout_s
            )
        except TimeoutError:
            print(f"not finished within {timeout_s:.0f}s; the services' logs are in var/log/")
            return 1
        failed = [job for job in watched if job.status != "completed"]
        for job in watched:
            state = (await client.get(f"/v1/jobs/{job.job_id}")).json()
            print(f"\n{job.job_type} {job.job_id}: {state['status']}")
            print(f"  lifecycle: {' → '.join(job.events)}")
            for output in state.get("outputs", []):
                # A plain client: the presigned URL is the whole credential.
                async with httpx.AsyncClient(timeout=30) as plain:
                    fetched = await plain.get(output["url"])
                got = len(fetched.content) if fetched.is_success else f"HTTP {fetched.status_code}"
                print(
                    f"  {output['name']} ({output['content_type']}, {output['size']} bytes; "
                    f"fetched through its URL: {got}):"
                )
                print(f"    {output['url']}")
        print(
            "\nOpen the URLs above (they expire) to fetch the outputs. Without "
            "GENSTREAM_WORKER_MODELS the workers run tiny random-weight models: the files are "
            "real PNG and WAV of the asked size, their content is noise."
        )
        return 1 if failed else 0


def run_demo(api_url: str, *, timeout_s: float, out: TextIO = sys.stdout) -> int:
    started = time.monotonic()
    code = asyncio.run(_demo(api_url, timeout_s, out))
    print(f"demo finished in {time.monotonic() - started:.1f}s")
    return code
