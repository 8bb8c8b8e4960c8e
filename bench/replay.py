"""The ``replay`` workload: ``genstream replay rebuild`` over a log of many lifecycle events.

The log is written once onto the run's own ``jobs.lifecycle`` and ``credits.ledger``: jobs
that complete, some with a preview, some retried, some failing, some rejected, their events
interleaved as concurrent jobs interleave, and the ledger entries those jobs make (a grant
per user, a reservation per accepted job, its settlement or release). Each event is a real
envelope encoded by ``contracts.encode`` once per kind, its ids and time then substituted,
so that a million of them are written in seconds; samples are decoded back as a check.

A group standing for the live projection gets the topics' ends as its committed offsets,
and the live read model is what one rebuild makes (kept). Each measured run is then the
command a user types, against that model: it replays everything, compares, finds nothing
and drops its scratch schema. ``events_per_s`` is the events it replayed (both topics) per
second of the whole command.
"""

from __future__ import annotations

import itertools
import logging
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from confluent_kafka import Consumer, Producer, TopicPartition
from sqlalchemy import text

from bench.config import BenchConfig
from bench.procs import ROOT
from bench.workloads import combine
from contracts import (
    CREDITS_LEDGER,
    JOBS_LIFECYCLE,
    CreditsGranted,
    CreditsReleased,
    CreditsReserved,
    CreditsSettled,
    Envelope,
    Event,
    JobAccepted,
    JobCompleted,
    JobFailed,
    JobPreview,
    JobQueued,
    JobRejected,
    JobRetried,
    JobStarted,
    JobType,
    OutputFile,
    RejectReason,
    SyntheticInput,
    Tier,
    TopicSpec,
    decode,
    encode,
    kafka_headers,
    tier_topic,
)
from genstream.db import sync_engine, upgrade
from genstream.kafka import delete_topics, ensure_topics
from genstream.kafka.admin import admin_client
from genstream.settings import StackSettings

__all__ = ["EventLog", "job_script", "run_replay"]

_log = logging.getLogger("bench")

SOURCE = "genstream/bench"
_JOB: Final = "job_" + "J" * 32
_USER: Final = "00000000-0000-4000-8000-00000000abcd"
_EVENT: Final = "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee"
_TIME: Final = datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
_WAVE: Final = 500
"""Jobs in flight together: their events interleave on the topics."""

Step = tuple[str, str | None]
"""One step of a job: the lifecycle event kind, and the ledger event that goes with it."""

_SCRIPTS: Final[dict[str, tuple[Step, ...]]] = {
    "completed": (
        ("accepted", "reserved"),
        ("queued", None),
        ("started", None),
        ("completed", "settled"),
    ),
    "previewed": (
        ("accepted", "reserved"),
        ("queued", None),
        ("started", None),
        ("preview", None),
        ("completed", "settled"),
    ),
    "retried": (
        ("accepted", "reserved"),
        ("queued", None),
        ("started", None),
        ("retried", None),
        ("started2", None),
        ("completed2", "settled"),
    ),
    "failed": (
        ("accepted", "reserved"),
        ("queued", None),
        ("started", None),
        ("failed", "released"),
    ),
    "rejected": (("rejected", None),),
}


def job_script(index: int) -> str:
    """The story of the ``index``-th job: mostly completions, with the other endings mixed in."""
    if index % 50 == 0:
        return "rejected"
    if index % 25 == 3:
        return "failed"
    if index % 20 == 2:
        return "retried"
    if index % 10 == 1:
        return "previewed"
    return "completed"


def _templates() -> dict[str, Event]:
    output = OutputFile(
        key=f"outputs/{_USER}/{_JOB}/0.png", size=1024, content_type="image/png", width=8, height=8
    )

    def completed(attempt: int, worker: str) -> JobCompleted:
        return JobCompleted(
            job_id=_JOB,
            attempt=attempt,
            worker_id=worker,
            outputs=(output,),
            run_ms=1200,
            usage_units=1,
        )

    return {
        "accepted": JobAccepted(
            job_id=_JOB, job_type=JobType.SYNTHETIC, tier=Tier.PRO, credits_reserved=5
        ),
        "queued": JobQueued(
            job_id=_JOB,
            job_type=JobType.SYNTHETIC,
            tier=Tier.PRO,
            input=SyntheticInput(),
            attempt=1,
            topic=tier_topic(JobType.SYNTHETIC, Tier.PRO),
        ),
        "started": JobStarted(job_id=_JOB, worker_id="bench-worker-1", attempt=1),
        "preview": JobPreview(
            job_id=_JOB,
            attempt=1,
            step=1,
            preview_key=f"outputs/{_USER}/{_JOB}/preview-1-1",
            content_type="image/png",
            blurhash="LEHV6nWB2yk8pyo0adR*.7kCMdnj",
        ),
        "completed": completed(1, "bench-worker-1"),
        "retried": JobRetried(
            job_id=_JOB,
            attempt=2,
            delay_ms=100,
            error_code="transient_error",
            error_message="the GPU went away",
        ),
        "started2": JobStarted(job_id=_JOB, worker_id="bench-worker-2", attempt=2),
        "completed2": completed(2, "bench-worker-2"),
        "failed": JobFailed(
            job_id=_JOB,
            attempt=1,
            error_code="permanent_error",
            error_message="the model refused",
            retryable=False,
        ),
        "rejected": JobRejected(
            job_id=_JOB, reason=RejectReason.INSUFFICIENT_CREDITS, detail="0 < 5"
        ),
        "reserved": CreditsReserved(job_id=_JOB, amount=5, idempotency_key=f"r:{_JOB}"),
        "settled": CreditsSettled(job_id=_JOB, amount=4, released=1, idempotency_key=f"s:{_JOB}"),
        "released": CreditsReleased(
            job_id=_JOB, amount=5, reason="failed", idempotency_key=f"x:{_JOB}"
        ),
    }


@dataclass(frozen=True, slots=True)
class _Template:
    value: str
    headers: list[tuple[str, str | bytes | None]]
    id_header: int
    """Position of the header that repeats the event id."""


def _template(data: Event) -> _Template:
    envelope = Envelope.wrap(data, user_id=_USER, source=SOURCE, event_id=_EVENT, time=_TIME)
    headers = list[tuple[str, str | bytes | None]](kafka_headers(envelope))
    id_header = next(i for i, (_, value) in enumerate(headers) if value == _EVENT.encode())
    return _Template(encode(envelope).decode(), headers, id_header)


_STAMP: Final = _template(JobStarted(job_id=_JOB, worker_id="w", attempt=1)).value


def _time_text() -> str:
    """How the codec writes ``_TIME``, found in an encoded envelope."""
    found = re.search(r'"time":"([^"]+)"', _STAMP)
    assert found is not None
    return found[1]


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, str | bytes | None]]


class EventLog:
    """The records of ``jobs`` jobs of ``users`` users, in the order they are written."""

    def __init__(self, *, lifecycle: TopicSpec, ledger: TopicSpec, users: list[str]) -> None:
        self.lifecycle, self.ledger, self.users = lifecycle, ledger, users
        self._templates = {kind: _template(data) for kind, data in _templates().items()}
        self._time_text = _time_text()
        self._start = datetime.now(UTC) - timedelta(days=1)

    def _record(self, kind: str, *, job_id: str, user_id: str, at: datetime) -> Record:
        template = self._templates[kind]
        event_id = str(uuid.uuid4())
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        value = (
            template.value.replace(_JOB, job_id)
            .replace(_USER, user_id)
            .replace(_EVENT, event_id)
            .replace(self._time_text, stamp)
        )
        headers = list(template.headers)
        headers[template.id_header] = (headers[template.id_header][0], event_id)
        ledger = kind in ("reserved", "settled", "released")
        topic, key = (self.ledger.name, user_id) if ledger else (self.lifecycle.name, job_id)
        return Record(topic, key.encode(), value.encode(), headers)

    def grants(self) -> Iterator[Record]:
        for user_id in self.users:
            data = CreditsGranted(amount=10_000_000, reason="benchmark", idempotency_key=user_id)
            envelope = Envelope.wrap(data, user_id=user_id, source=SOURCE, time=self._start)
            headers = list[tuple[str, str | bytes | None]](kafka_headers(envelope))
            yield Record(self.ledger.name, user_id.encode(), encode(envelope), headers)

    def jobs(self, job_ids: list[str]) -> Iterator[Record]:
        """Every job's events, ``_WAVE`` jobs at a time, step by step across the wave."""
        for wave_start in range(0, len(job_ids), _WAVE):
            wave = range(wave_start, min(wave_start + _WAVE, len(job_ids)))
            base = self._start + timedelta(seconds=wave_start / 100)
            longest = max(len(_SCRIPTS[job_script(i)]) for i in wave)
            for step in range(longest):
                for index in wave:
                    script = _SCRIPTS[job_script(index)]
                    if step >= len(script):
                        continue
                    job_id, user_id = job_ids[index], self.users[index % len(self.users)]
                    at = base + timedelta(seconds=step, microseconds=index - wave_start)
                    lifecycle, ledger = script[step]
                    yield self._record(lifecycle, job_id=job_id, user_id=user_id, at=at)
                    if ledger is not None:
                        yield self._record(ledger, job_id=job_id, user_id=user_id, at=at)


def jobs_for(lifecycle_events: int) -> int:
    """How many jobs of the mix make at least ``lifecycle_events`` lifecycle events."""
    total, jobs = 0, 0
    while total < lifecycle_events:
        total += len(_SCRIPTS[job_script(jobs)])
        jobs += 1
    return jobs


@dataclass(frozen=True, slots=True)
class _Written:
    lifecycle: int
    ledger: int
    seconds: float


def _write(stack: StackSettings, log: EventLog, job_ids: list[str]) -> _Written:
    batching: dict[str, str | int | float | bool] = {
        "linger.ms": 50,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
    }
    producer = Producer(stack.kafka.producer_config(**batching))
    counts = {log.lifecycle.name: 0, log.ledger.name: 0}
    checked: set[str] = set()
    began = time.monotonic()
    for record in itertools.chain(log.grants(), log.jobs(job_ids)):
        kind = str(record.headers[1][1])
        if kind not in checked:
            decode(record.value, record.headers)  # refuses what the projection would refuse
            checked.add(kind)
        while True:
            try:
                producer.produce(
                    record.topic, value=record.value, key=record.key, headers=record.headers
                )
                break
            except BufferError:
                producer.poll(0.1)
        counts[record.topic] += 1
    if producer.flush(120) != 0:
        raise RuntimeError("the replay log was not fully written")
    return _Written(counts[log.lifecycle.name], counts[log.ledger.name], time.monotonic() - began)


def _commit_ends(stack: StackSettings, group: str, topics: list[TopicSpec]) -> None:
    """Gives ``group`` the topics' ends as committed offsets, as a caught-up projection has."""
    consumer = Consumer(stack.kafka.librdkafka(**{"group.id": group}))
    try:
        ends = []
        for spec in topics:
            for partition in range(spec.partitions):
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(spec.name, partition), timeout=30
                )
                ends.append(TopicPartition(spec.name, partition, high))
        consumer.commit(offsets=ends, asynchronous=False)
    finally:
        consumer.close()


def _submissions(stack: StackSettings, schema: str, users: list[str], job_ids: list[str]) -> None:
    """Users and job rows as the API leaves them, which the rebuild copies."""
    engine = sync_engine(stack.pg, schema=schema)
    now = datetime.now(UTC).isoformat()
    connection = engine.raw_connection()
    try:
        cursor: Any = connection.cursor()
        with cursor.copy("COPY users (id, email, plan, created_at) FROM STDIN") as copy:
            for user_id in users:
                copy.write_row((user_id, f"replay-{user_id}@example.com", "PRO", now))
        columns = (
            "id, user_id, type, status, input, request_hash, event_id, event_trace, created_at"
        )
        job_input = SyntheticInput().model_dump_json()
        trace = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
        with cursor.copy(f"COPY jobs ({columns}) FROM STDIN") as copy:
            for index, job_id in enumerate(job_ids):
                user_id = users[index % len(users)]
                row = (job_id, user_id, "synthetic", "pending", job_input, "0" * 64)
                copy.write_row((*row, str(uuid.uuid4()), trace, now))
        connection.commit()
    finally:
        connection.close()
        engine.dispose()


_REPLAYED: Final = re.compile(r"replayed (\d+) event\(s\).* into (replay_\w+)")


@dataclass(frozen=True, slots=True)
class RebuildRun:
    seconds: float
    replayed: int
    scratch: str
    code: int
    out: str


def rebuild_command(argv: list[str], *, timeout_s: float) -> RebuildRun:
    """``genstream replay rebuild ARGV`` as a command of its own, timed from start to exit."""
    began = time.monotonic()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("genstream")), "replay", "rebuild", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    seconds = time.monotonic() - began
    found = _REPLAYED.search(done.stdout)
    if found is None:
        raise RuntimeError(f"genstream replay rebuild failed ({done.returncode}): {done.stderr}")
    return RebuildRun(seconds, int(found[1]), found[2], done.returncode, done.stdout)


def _phases(run: RebuildRun) -> str:
    found = re.search(r"^time by phase (.*)$", run.out, re.MULTILINE)
    return found[1] if found else "no time by phase"


def run_replay(stack: StackSettings, config: BenchConfig, *, run_id: str) -> dict[str, Any]:
    prefix = f"bench.{run_id}.replay."
    lifecycle, ledger = JOBS_LIFECYCLE.prefixed(prefix), CREDITS_LEDGER.prefixed(prefix)
    schema, group = f"bench_{run_id}_replay", f"bench-replay-{run_id}"
    users = [str(uuid.uuid4()) for _ in range(config.replay_users)]
    job_ids = [f"job_replay{uuid.uuid4().hex}" for _ in range(jobs_for(config.replay_events))]
    model: str | None = None
    ensure_topics(stack.kafka, [lifecycle, ledger])
    try:
        upgrade(stack.pg, schema=schema)
        _submissions(stack, schema, users, job_ids)
        written = _write(stack, EventLog(lifecycle=lifecycle, ledger=ledger, users=users), job_ids)
        _log.info(
            "replay log: %d lifecycle and %d ledger events of %d jobs in %.1fs",
            written.lifecycle,
            written.ledger,
            len(job_ids),
            written.seconds,
        )
        _commit_ends(stack, group, [lifecycle, ledger])
        argv = ["--group", group, "--topic-prefix", prefix, "--show", "0"]
        timeout_s = config.replay_timeout_s
        # The live model: what a rebuild makes of the log (every row differs from the bare
        # submissions, which is what this first run reports).
        pilot = rebuild_command(
            [*argv, "--schema", schema, "--keep-scratch", "--timeout", str(timeout_s)],
            timeout_s=timeout_s + 120,
        )
        model = pilot.scratch
        _log.info("replay pilot: %d events in %.1fs", pilot.replayed, pilot.seconds)
        runs = []
        for _ in range(config.repetitions):
            run = rebuild_command(
                [*argv, "--schema", model, "--timeout", str(timeout_s)], timeout_s=timeout_s + 120
            )
            if run.code != 0:
                raise RuntimeError(f"the rebuild differs from the model it rebuilt:\n{run.out}")
            runs.append(
                {
                    "events_per_s": run.replayed / run.seconds,
                    "seconds": run.seconds,
                    "replayed": float(run.replayed),
                }
            )
            _log.info("replay: %d events in %.1fs; %s", run.replayed, run.seconds, _phases(run))
        section = combine(runs, ("events_per_s", "seconds", "replayed"))
        return {
            "lifecycle_events": written.lifecycle,
            "ledger_events": written.ledger,
            "jobs": len(job_ids),
            "users": len(users),
            "write_s": round(written.seconds, 1),
            **section,
        }
    finally:
        delete_topics(stack.kafka, [lifecycle.name, ledger.name])
        admin = admin_client(stack.kafka)  # kept referenced: the future dies with its client
        admin.delete_consumer_groups([group])[group].exception(30)
        engine = sync_engine(stack.pg)
        with engine.begin() as connection:
            for name in (schema, model):
                if name is not None:
                    connection.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        engine.dispose()
