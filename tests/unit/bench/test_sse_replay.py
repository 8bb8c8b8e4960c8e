"""The SSE clients' byte-level parsing and latency pairs, and the replay log's job mix."""

from __future__ import annotations

import collections
from datetime import UTC, datetime

from bench.replay import _SCRIPTS, job_script, jobs_for
from bench.sse import delivery_latencies_ms
from bench.sseclient import Dechunker, StreamParser, build_get, event_time

_STAMP = "2026-01-02T03:04:05.250000+00:00"
_AT = datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=UTC).timestamp()


def _progress(event_id: str = "7.1") -> bytes:
    data = f'{{"id":"e1","type":"genstream.job.progress.v1","job_id":"job_1","time":"{_STAMP}"}}'
    return f"id: {event_id}\nevent: job.progress\ndata: {data}\n\n".encode()


def _chunk(payload: bytes) -> bytes:
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


def test_request_is_a_get_of_the_stream_with_the_key() -> None:
    raw = build_get("127.0.0.1", 8000, "/v1/events", "gsk_x")
    assert raw.startswith(b"GET /v1/events HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer gsk_x\r\n" in raw
    assert raw.endswith(b"\r\n\r\n")


def test_chunked_body_is_reassembled_whatever_the_pieces() -> None:
    payload = b"retry: 2000\n: stream open\n\n" + _progress()
    body = _chunk(payload[:10]) + _chunk(payload[10:]) + b"0\r\n\r\n"
    for size in (1, 2, 3, 7, len(body)):
        dechunker = Dechunker()
        out = b"".join(dechunker.feed(body[i : i + size]) for i in range(0, len(body), size))
        assert out == payload
        assert dechunker.finished


def test_parser_times_progress_events_only_and_waits_for_whole_frames() -> None:
    parser = StreamParser()
    stream = b"retry: 2000\n: stream open\n\n" + _progress() + b": heartbeat\n\n" + _progress("7.2")
    cut = len(stream) - 5
    parser.feed(stream[:cut], arrived=_AT + 0.010)
    assert parser.progress == [(_AT, _AT + 0.010)]
    parser.feed(stream[cut:], arrived=_AT + 0.020)
    assert parser.frames == 4
    assert parser.progress == [(_AT, _AT + 0.010), (_AT, _AT + 0.020)]


def test_event_time_reads_the_stamp_and_refuses_garbage() -> None:
    assert event_time(_progress()) == _AT
    assert event_time(b'data: {"time":"yesterday"}\n') is None
    assert event_time(b"data: {}\n") is None


def test_latencies_skip_events_stamped_before_the_run() -> None:
    pairs = [(10.0, 10.004), (11.0, 11.250), (9.0, 9.5)]
    assert [round(x, 3) for x in delivery_latencies_ms(pairs, since=10.0)] == [4.0, 250.0]


def test_the_replay_mix_is_mostly_completions_with_every_ending() -> None:
    stories = collections.Counter(job_script(i) for i in range(1000))
    assert set(stories) == set(_SCRIPTS)
    assert stories["completed"] > sum(stories.values()) / 2
    jobs = jobs_for(10_000)
    events = sum(len(_SCRIPTS[job_script(i)]) for i in range(jobs))
    assert 10_000 <= events < 10_000 + max(len(s) for s in _SCRIPTS.values())
