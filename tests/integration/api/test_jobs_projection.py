"""The lifecycle projection on the real stack: copies, disorder and a killed service."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from api.projection.job_state import StoredEvent, fold
from api.projection.jobs import LIFECYCLE_TYPES
from contracts import Envelope, TopicSpec
from genstream.db import sync_engine
from genstream.db.models import CreditBalance, CreditLedgerEntry, Job
from genstream.db.read_model import JobEventRow
from genstream.settings import StackSettings
from producers import EventProducer
from tests.integration.api.lifecycle import (
    Story,
    add_job,
    add_user,
    granted,
    job_row,
    project,
    stored_event_ids,
)
from tests.polling import poll_until

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def schema_engine(stack: StackSettings, pg_schema: tuple[Engine, str]) -> Iterator[Engine]:
    engine = sync_engine(stack.pg, schema=pg_schema[1])
    yield engine
    engine.dispose()


def _balance(engine: Engine, user_id: str) -> tuple[int, int]:
    with Session(engine) as session:
        row = session.get(CreditBalance, user_id)
        return (0, 0) if row is None else (row.balance, row.reserved)


def _expected(events: list[Envelope[Any]], charged: int | None) -> dict[str, Any]:
    history = [StoredEvent(e.id, e.time, e.data) for e in events if e.type in LIFECYCLE_TYPES]
    return {**fold(history).columns(), "credits_charged": charged}


def test_projection_is_idempotent_and_blind_to_arrival_order(schema_engine: Engine) -> None:
    user = add_user(schema_engine)
    stories: dict[str, tuple[list[Envelope[Any]], int | None]] = {}

    def job(build: Callable[[Story], list[Envelope[Any]]], charged: int | None) -> str:
        story = Story(user, add_job(schema_engine, user))
        stories[story.job_id] = (build(story), charged)
        return story.job_id

    done = job(
        lambda s: [
            s.accepted(), s.reserved(), s.queued(), s.started(), s.preview(1), s.preview(2),
            s.completed(), s.settled(4, 1),
        ],
        4,
    )  # fmt: skip
    retried = job(
        lambda s: [
            s.accepted(), s.reserved(), s.queued(), s.started("w-a"), s.retried(2),
            s.started("w-b", 2), s.completed("w-b", 2), s.settled(5, 0),
        ],
        5,
    )  # fmt: skip
    failed = job(
        lambda s: [s.accepted(), s.reserved(), s.queued(), s.started(), s.failed(), s.released()],
        0,
    )
    cancelled = job(
        lambda s: [s.accepted(), s.reserved(), s.queued(), s.cancelled(), s.released()], 0
    )
    rejected = job(lambda s: [s.rejected()], None)
    expired = job(lambda s: [s.accepted(), s.reserved(), s.queued(), s.expired(), s.released()], 0)
    running = job(
        lambda s: [s.accepted(), s.reserved(), s.queued(), s.started(), s.preview(1)], None
    )
    queued = job(lambda s: [s.accepted(), s.reserved(), s.queued()], None)

    everything = [granted(user, 100)] + [e for events, _ in stories.values() for e in events]
    # Every event twice (a writer's retry, a redelivered batch), in a random order and in
    # batches of random sizes.
    rng = random.Random(20260101)
    feed = everything * 2
    rng.shuffle(feed)
    while feed:
        size = rng.randint(1, 12)
        project(schema_engine, feed[:size])
        feed = feed[size:]

    lifecycle_ids = {e.id for e in everything if e.type in LIFECYCLE_TYPES}
    stored = stored_event_ids(schema_engine)
    assert len(stored) == len(lifecycle_ids), "each event is stored once"
    assert set(stored) == lifecycle_ids
    for job_id, (events, charged) in stories.items():
        assert job_row(schema_engine, job_id) == _expected(events, charged), job_id

    statuses = {job_id: job_row(schema_engine, job_id)["status"] for job_id in stories}
    assert statuses == {
        done: "completed",
        retried: "completed",
        failed: "failed",
        cancelled: "cancelled",
        rejected: "rejected",
        expired: "expired",
        running: "running",
        queued: "queued",
    }
    second = job_row(schema_engine, retried)
    assert (second["attempt"], second["worker_id"]) == (2, "w-b")
    assert job_row(schema_engine, done)["preview"]["step"] == 2
    # 100 granted, 7 holds of 5; charges of 4 (1 back) and 5, three holds released, two held.
    assert _balance(schema_engine, user) == (100 - 35 + 1 + 15, 10)

    # The whole history once more, as one redelivered batch: nothing is new, nothing moves.
    with Session(schema_engine) as session:
        touched = session.scalar(select(func.max(Job.updated_at)))
    assert project(schema_engine, everything) == 0
    with Session(schema_engine) as session:
        assert session.scalar(select(func.max(Job.updated_at))) == touched


def _send_all(
    producer: EventProducer, specs: dict[str, TopicSpec], events: list[Envelope[Any]]
) -> None:
    for envelope in events:
        spec = (
            specs["ledger"]
            if envelope.type.startswith("genstream.credits.")
            else specs["lifecycle"]
        )
        producer.produce(spec, envelope)
    assert producer.flush(30) == 0


class _ProjectionProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._env = env
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "api.projection.main"],
                cwd=ROOT,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.terminate()
            self.process.wait(30)


def _counts(engine: Engine) -> tuple[int, int, int]:
    with Session(engine) as session:
        events = session.scalar(select(func.count()).select_from(JobEventRow)) or 0
        entries = session.scalar(select(func.count()).select_from(CreditLedgerEntry)) or 0
        completed = (
            session.scalar(select(func.count()).select_from(Job).where(Job.status == "completed"))
            or 0
        )
    return events, entries, completed


def test_projection_killed_mid_stream_misses_nothing_and_counts_nothing_twice(
    stack: StackSettings,
    make_topic: Callable[[str], TopicSpec],
    pg_schema: tuple[Engine, str],
    schema_engine: Engine,
    unique: str,
    tmp_path: Path,
) -> None:
    specs = {"lifecycle": make_topic("jobs.lifecycle"), "ledger": make_topic("credits.ledger")}
    make_topic("genstream.deadletter")
    users = [add_user(schema_engine) for _ in range(3)]
    stories = [Story(user, add_job(schema_engine, user)) for _ in range(60) for user in users]
    history = [
        [s.accepted(), s.reserved(), s.queued(), s.started(), s.completed(), s.settled(3, 2)]
        for s in stories
    ]
    first = [e for events in history[:90] for e in events]
    second = [e for events in history[90:] for e in events]
    grants = [granted(user, 1000) for user in users]
    lifecycle_total = sum(1 for e in first + second if e.type in LIFECYCLE_TYPES)
    ledger_total = len(grants) + sum(1 for e in first + second if e.type not in LIFECYCLE_TYPES)

    env = {
        **os.environ,
        "GENSTREAM_PROJECTION_GROUP": f"projection-{unique}",
        "GENSTREAM_PROJECTION_TOPIC_PREFIX": f"test.{unique}.",
        "GENSTREAM_PROJECTION_PG_SCHEMA": pg_schema[1],
        "GENSTREAM_PROJECTION_BATCH_SIZE": "20",
        # The killed member's partitions wait this long before the restarted one gets them.
        "GENSTREAM_PROJECTION_SESSION_TIMEOUT_S": "6",
        "GENSTREAM_KAFKA__BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
    }
    service = _ProjectionProcess(env, tmp_path / "projection.log")
    with EventProducer(settings=stack.kafka) as producer:
        _send_all(producer, specs, grants + first)
        service.start()
        try:
            poll_until(
                lambda: _counts(schema_engine)[0] > 0 or not service.alive(),
                timeout_s=60,
                what="the projection's first batch",
            )
            assert service.alive(), (tmp_path / "projection.log").read_text()
            service.kill()
            killed_at = _counts(schema_engine)
            # More history arrives while it is down, and part of it twice.
            _send_all(producer, specs, second + first[:100])
            service.start()
            poll_until(
                lambda: (
                    _counts(schema_engine) == (lifecycle_total, ledger_total, len(stories))
                    or not service.alive()
                ),
                timeout_s=90,
                what="the restarted projection to catch up",
            )
            assert service.alive(), (tmp_path / "projection.log").read_text()
        finally:
            service.stop()
    assert killed_at[0] < lifecycle_total, "the kill came before the end of the stream"
    assert _counts(schema_engine) == (lifecycle_total, ledger_total, len(stories))
    assert sorted(stored_event_ids(schema_engine)) == sorted(
        {e.id for e in first + second if e.type in LIFECYCLE_TYPES}
    )
    for user in users:
        # 1000 granted, 60 jobs charged 3 each; nothing held, nothing counted twice.
        assert _balance(schema_engine, user) == (1000 - 60 * 3, 0)
    with Session(schema_engine) as session:
        charged = session.scalars(select(Job.credits_charged)).all()
    assert charged == [3] * len(stories)
