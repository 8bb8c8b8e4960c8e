"""Many Server-Sent Events clients in one process (``python -m bench.sseclient SPEC OUT``).

Each client is a raw keep-alive connection that sends one ``GET`` and then only reads: the
chunked body is taken apart at the byte level and only progress events are looked into,
for the ``time`` their producer stamped them with. Arrival minus that time is the event's
latency. Thousands of clients fit in one process this way, next to the server under test
on the same cores.

The parent drives it over stdin/stdout: the process prints ``ready <open> <failed>`` once
every client's stream is open (or gave up), and on a ``stop`` line writes what it measured
to OUT and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, cast

__all__ = [
    "ClientSpec",
    "Dechunker",
    "StreamParser",
    "build_get",
    "event_time",
    "raise_fd_limit",
]

_PROGRESS: Final = b"event: job.progress\n"
_TIME_KEY: Final = b'"time":"'


@dataclass(frozen=True, slots=True)
class ClientSpec:
    host: str
    port: int
    path: str
    tokens: tuple[str, ...]
    """Client ``i`` streams as the owner of token ``i % len``."""
    clients: int
    connect_per_s: float
    """Connections opened per second at most."""
    pending: int = 200
    """Connections whose stream is not open yet, at most: the server's pace sets the rest,
    and its accept queue never overflows."""
    connect_timeout_s: float = 60.0
    """How long the last streams may take to open once every connection was made."""

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ClientSpec:
        return cls(**{**raw, "tokens": tuple(raw["tokens"])})


def build_get(host: str, port: int, path: str, token: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
    ).encode("ascii")


def raise_fd_limit() -> int:
    """Lifts the soft limit of open files to the hard one; returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Dechunker:
    """The payload of an HTTP/1.1 chunked body, fed in pieces as they arrive."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._left = 0
        """Payload bytes still due of the current chunk, then its closing CRLF (2)."""
        self._in_data = False
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        out = bytearray()
        while self._buffer and not self.finished:
            if self._in_data:
                take = min(self._left, len(self._buffer))
                out += self._buffer[:take]
                del self._buffer[:take]
                self._left -= take
                if self._left:
                    break
                if len(self._buffer) < 2:
                    break
                del self._buffer[:2]
                self._in_data = False
                continue
            end = self._buffer.find(b"\r\n")
            if end < 0:
                break
            size = int(bytes(self._buffer[:end]).split(b";", 1)[0], 16)
            del self._buffer[: end + 2]
            if size == 0:
                self.finished = True
                break
            self._left, self._in_data = size, True
        return bytes(out)


class StreamParser:
    """Splits an event stream into its events and keeps the arrival of each progress event."""

    def __init__(self) -> None:
        self._pending = b""
        self.frames = 0
        self.progress: list[tuple[float, float]] = []
        """(sent, arrived) of each progress event, wall-clock seconds."""

    def feed(self, payload: bytes, arrived: float) -> None:
        data = self._pending + payload
        start = 0
        while True:
            end = data.find(b"\n\n", start)
            if end < 0:
                break
            frame = data[start : end + 1]
            start = end + 2
            self.frames += 1
            if _PROGRESS in frame:
                sent = event_time(frame)
                if sent is not None:
                    self.progress.append((sent, arrived))
        self._pending = data[start:]


def event_time(frame: bytes) -> float | None:
    """The ``time`` of the event in an SSE frame's ``data`` line, as a POSIX timestamp."""
    at = frame.find(_TIME_KEY)
    if at < 0:
        return None
    begin = at + len(_TIME_KEY)
    end = frame.find(b'"', begin)
    if end < 0:
        return None
    try:
        return datetime.fromisoformat(frame[begin:end].decode("ascii")).timestamp()
    except ValueError:
        return None


@dataclass(slots=True)
class _State:
    spec: ClientSpec
    opened: int = 0
    failed: int = 0
    closed_early: int = 0
    parsers: list[StreamParser] = field(default_factory=list)
    all_settled: asyncio.Event = field(default_factory=asyncio.Event)
    slots: asyncio.Semaphore = field(default_factory=asyncio.Semaphore)

    def settle(self, ok: bool) -> None:
        self.slots.release()
        if ok:
            self.opened += 1
        else:
            self.failed += 1
        if self.opened + self.failed >= self.spec.clients:
            self.all_settled.set()


class _Client(asyncio.Protocol):
    def __init__(self, state: _State, request: bytes) -> None:
        self._state = state
        self._request = request
        self._head = bytearray()
        self._body: Dechunker | None = None
        self._opened = False
        self.parser = StreamParser()
        state.parsers.append(self.parser)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        cast(asyncio.Transport, transport).write(self._request)

    def data_received(self, data: bytes) -> None:
        arrived = time.time()
        if self._body is None:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self._head.startswith(b"HTTP/1.1 200"):
                self._state.settle(False)
                self._opened = True  # settled: its end is no early close
                return
            data = bytes(self._head[end + 4 :])
            self._body = Dechunker()
        payload = self._body.feed(data)
        if payload:
            self.parser.feed(payload, arrived)
            if not self._opened:
                self._opened = True
                self._state.settle(True)

    def connection_lost(self, exc: Exception | None) -> None:
        del exc
        if not self._opened:
            self._opened = True
            self._state.settle(False)
        else:
            self._state.closed_early += 1


async def _connect(loop: asyncio.AbstractEventLoop, state: _State) -> list[asyncio.BaseTransport]:
    spec = state.spec
    requests = [build_get(spec.host, spec.port, spec.path, token) for token in spec.tokens]
    transports: list[asyncio.BaseTransport] = []
    began = time.monotonic()
    for index in range(spec.clients):
        due = began + index / spec.connect_per_s
        if due > time.monotonic():
            await asyncio.sleep(due - time.monotonic())
        request = requests[index % len(requests)]
        await state.slots.acquire()
        try:
            transport, _ = await loop.create_connection(
                lambda request=request: _Client(state, request),  # type: ignore[misc]
                spec.host,
                spec.port,
            )
        except OSError:
            state.settle(False)
            continue
        transports.append(transport)
    return transports


async def run_clients(spec: ClientSpec) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    state = _State(spec, slots=asyncio.Semaphore(spec.pending))
    transports = await _connect(loop, state)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(state.all_settled.wait(), spec.connect_timeout_s)
    print(f"ready {state.opened} {state.failed}", flush=True)
    stop = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), _on_stdin, stop)
    await stop.wait()
    loop.remove_reader(sys.stdin.fileno())
    # Counted before closing: an early close is one the server made.
    closed_early = state.closed_early
    for transport in transports:
        transport.close()
    return {
        "opened": state.opened,
        "failed": state.failed,
        "closed_early": closed_early,
        "frames": sum(p.frames for p in state.parsers),
        "progress": [pair for p in state.parsers for pair in p.progress],
    }


def _on_stdin(stop: asyncio.Event) -> None:
    line = sys.stdin.readline()
    if not line or line.strip() == "stop":
        stop.set()


def main(argv: list[str]) -> int:
    spec = ClientSpec.from_dict(json.loads(Path(argv[1]).read_text()))
    raise_fd_limit()
    try:
        import uvloop

        result = uvloop.run(run_clients(spec))
    except ImportError:
        result = asyncio.run(run_clients(spec))
    Path(argv[2]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
