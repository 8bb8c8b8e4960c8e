"""An open-loop HTTP/1.1 load generator, run as its own process (``python -m bench.httpload``).

Request times are fixed before the first one is sent (``open_loop_schedule``); each request
takes an idle keep-alive connection or, when none is free, waits for one (a new connection
is opened while there are fewer than the limit). Latency is measured from the scheduled
time, so waiting to be sent counts. Requests and responses are handled at the byte level
(prebuilt requests, responses framed by ``Content-Length``) so that the generator itself,
sharing two cores with the system under test, stays far below the rates it offers; its own
send rate and send lag are reported so that this can be checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from bench.schedule import open_loop_schedule

__all__ = ["LoadSpec", "build_request", "parse_head", "run_load"]


@dataclass(frozen=True, slots=True)
class LoadSpec:
    host: str
    port: int
    path: str
    body: str
    bearer_tokens: tuple[str, ...]
    """Request ``i`` uses token ``i % len``: load spread over several users."""
    rate_per_s: float
    duration_s: float
    start_at: float
    """Wall-clock time (``time.time()``) of the first scheduled request."""
    connections: int = 256
    timeout_s: float = 10.0
    keep_ids: bool = False
    """Keep the ``id`` of each 2xx JSON answer (to follow the job it made)."""

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LoadSpec:
        return cls(**{**raw, "bearer_tokens": tuple(raw["bearer_tokens"])})


def build_request(host: str, port: int, path: str, body: bytes, token: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


def parse_head(head: bytes) -> tuple[int, int]:
    """Status and ``Content-Length`` of a response head (without the blank line)."""
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
            break
    return status, length


@dataclass(slots=True)
class _Request:
    index: int
    payload: bytes
    scheduled: float
    queued: float = 0.0
    """When the generator got to it: late only when the generator itself falls behind."""
    sent: float = 0.0
    done: float = 0.0
    status: int = 0
    body: bytes = b""


@dataclass(slots=True)
class _Pool:
    loop: asyncio.AbstractEventLoop
    spec: LoadSpec
    idle: deque[_Connection] = field(default_factory=deque)
    waiting: deque[_Request] = field(default_factory=deque)
    opened: int = 0
    expected: int = 0
    finished: int = 0
    connect_errors: int = 0
    all_done: asyncio.Event = field(default_factory=asyncio.Event)

    def finish(self) -> None:
        self.finished += 1
        if self.finished >= self.expected:
            self.all_done.set()

    def submit(self, request: _Request) -> None:
        request.queued = time.monotonic()
        if self.idle:
            self.idle.pop().send(request)
            return
        self.waiting.append(request)
        if self.opened < self.spec.connections:
            self.opened += 1
            self.loop.create_task(self._open())

    async def _open(self) -> None:
        try:
            await self.loop.create_connection(
                lambda: _Connection(self), self.spec.host, self.spec.port
            )
        except OSError:
            self.opened -= 1
            self.connect_errors += 1

    def release(self, connection: _Connection) -> None:
        if self.waiting:
            connection.send(self.waiting.popleft())
        else:
            self.idle.append(connection)

    def lost(self, connection: _Connection) -> None:
        self.opened -= 1
        if connection in self.idle:
            self.idle.remove(connection)


class _Connection(asyncio.Protocol):
    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._request: _Request | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        self._pool.release(self)

    def send(self, request: _Request) -> None:
        assert self._transport is not None
        self._request = request
        request.sent = time.monotonic()
        self._transport.write(request.payload)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        request = self._request
        if request is None:
            return
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        status, length = parse_head(bytes(self._buffer[:end]))
        total = end + 4 + length
        if len(self._buffer) < total:
            return
        request.done = time.monotonic()
        request.status = status
        request.body = bytes(self._buffer[end + 4 : total])
        del self._buffer[:total]
        self._request = None
        self._pool.finish()
        self._pool.release(self)

    def connection_lost(self, exc: Exception | None) -> None:
        del exc
        if self._request is not None:
            self._request.done = time.monotonic()
            self._request.status = -1
            self._pool.finish()
            self._request = None
        self._pool.lost(self)


async def run_load(spec: LoadSpec) -> dict[str, Any]:
    """Sends the schedule and returns, per request, its scheduled time, latency and status."""
    loop = asyncio.get_running_loop()
    body = spec.body.encode()
    payloads = [build_request(spec.host, spec.port, spec.path, body, t) for t in spec.bearer_tokens]
    # One clock for scheduling (monotonic), reported on the wall clock the caller shares.
    wall_minus_mono = time.time() - time.monotonic()
    start = spec.start_at - wall_minus_mono
    times = open_loop_schedule(spec.rate_per_s, spec.duration_s, start=start)
    requests = [_Request(i, payloads[i % len(payloads)], at) for i, at in enumerate(times)]
    pool = _Pool(loop, spec, expected=len(requests))
    next_index = 0
    while next_index < len(requests):
        now = time.monotonic()
        while next_index < len(requests) and requests[next_index].scheduled <= now:
            pool.submit(requests[next_index])
            next_index += 1
        if next_index < len(requests):
            await asyncio.sleep(max(0.0, requests[next_index].scheduled - time.monotonic()))
    last = times[-1] if times else time.monotonic()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            pool.all_done.wait(), max(0.0, last + spec.timeout_s - time.monotonic())
        )
    return _results(spec, requests, wall_minus_mono, pool)


def _results(
    spec: LoadSpec, requests: list[_Request], wall_minus_mono: float, pool: _Pool
) -> dict[str, Any]:
    ids: list[str | None] = []
    for request in requests:
        job_id = None
        if spec.keep_ids and 200 <= request.status < 300:
            job_id = json.loads(request.body).get("id")
        ids.append(job_id)
    sent = [r.sent for r in requests if r.sent]
    return {
        "offered_per_s": spec.rate_per_s,
        "duration_s": spec.duration_s,
        "scheduled": [r.scheduled + wall_minus_mono for r in requests],
        "status": [r.status for r in requests],
        "latency_ms": [(r.done - r.scheduled) * 1000 if r.done else None for r in requests],
        "send_lag_ms": [(r.sent - r.scheduled) * 1000 if r.sent else None for r in requests],
        "generator_lag_ms": [(r.queued - r.scheduled) * 1000 for r in requests],
        "sent": len(sent),
        "send_span_s": (max(sent) - min(sent)) if len(sent) > 1 else 0.0,
        "connections_opened": pool.opened,
        "connect_errors": pool.connect_errors,
        "ids": ids if spec.keep_ids else [],
    }


def main(argv: list[str]) -> int:
    """``python -m bench.httpload SPEC.json OUT.json``."""
    spec = LoadSpec.from_dict(json.loads(Path(argv[1]).read_text()))
    try:
        import uvloop

        result = uvloop.run(run_load(spec))
    except ImportError:
        result = asyncio.run(run_load(spec))
    Path(argv[2]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
