"""``genstream replay rebuild`` against a live read model the projection kept."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from api.projection.projector import Projection
from api.projection.runner import ProjectionRunner
from contracts import Envelope, TopicSpec
from genstream.cli import main
from genstream.db import sync_engine
from genstream.kafka import EventConsumer
from genstream.settings import StackSettings
from producers import EventProducer
from tests.integration.api.lifecycle import Story, add_job, add_user, granted, job_row


@pytest.fixture
def schema_engine(stack: StackSettings, pg_schema: tuple[Engine, str]) -> Iterator[Engine]:
    engine = sync_engine(stack.pg, schema=pg_schema[1])
    yield engine
    engine.dispose()


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text(f"SELECT count(*) FROM {table}")) or 0)  # noqa: S608


def _rebuild(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    code = main(["replay", "rebuild", *argv])
    return code, capsys.readouterr().out


def test_a_rebuild_equals_the_live_model_finds_damage_and_repairs_it(
    stack: StackSettings,
    make_topic: Callable[[str], TopicSpec],
    pg_schema: tuple[Engine, str],
    schema_engine: Engine,
    unique: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topics = {"lifecycle": make_topic("jobs.lifecycle"), "ledger": make_topic("credits.ledger")}
    users = [add_user(schema_engine) for _ in range(3)]
    stories = {
        user: [Story(user, add_job(schema_engine, user)) for _ in range(4)] for user in users
    }
    events: list[Envelope[Any]] = [granted(user, 50) for user in users]
    for done, retried, failed, running in stories.values():
        events += [done.accepted(), done.reserved(), done.queued(), done.started(), done.preview(1)]
        events += [done.completed(), done.settled(4, 1)]
        events += [retried.accepted(), retried.reserved(), retried.queued(), retried.started("a")]
        events += [retried.retried(2), retried.started("b", 2), retried.completed("b", 2)]
        events += [retried.settled(5, 0), failed.rejected()]
        events += [running.accepted(), running.reserved(), running.queued(), running.started()]
    with EventProducer(settings=stack.kafka) as producer:
        for envelope in events + events[::7]:  # some of them twice, as writers' retries do
            kind = "ledger" if envelope.type.startswith("genstream.credits.") else "lifecycle"
            producer.produce(topics[kind], envelope)
        assert producer.flush(30) == 0

        group = f"projection-{unique}"
        lifecycle_total = len({e.id for e in events if not e.type.startswith("genstream.credits.")})
        with EventConsumer(
            settings=stack.kafka, group_id=group, topics=[t.name for t in topics.values()]
        ) as consumer:
            runner = ProjectionRunner(engine=schema_engine, consumer=consumer, apply=Projection())
            assert runner.drain(
                until=lambda: (
                    _count(schema_engine, "job_events") == lifecycle_total
                    and _count(schema_engine, "credit_ledger") == len(events) - lifecycle_total
                ),
                timeout_s=60,
            )

        # Written after the live projection stopped reading: in flight, not a difference.
        late = stories[users[0]][3]
        producer.produce(topics["lifecycle"], late.preview(3))
        assert producer.flush(30) == 0

    argv = ["--group", group, "--topic-prefix", f"test.{unique}.", "--schema", pg_schema[1]]
    for workers in ("1", "3"):
        code, out = _rebuild(capsys, [*argv, "--workers", workers])
        assert code == 0, out
        assert f"({workers} shard(s))" in out
        assert "the rebuilt read model equals the live one" in out
    assert "in flight, not compared: 1 job(s), 0 user(s)" in out
    assert f"{len(users) * 4} job(s) rebuilt" in out
    scratch = re.search(r"into (replay_\w+)", out)
    assert scratch is not None
    with schema_engine.connect() as connection:
        left = connection.scalar(
            text("SELECT count(*) FROM pg_namespace WHERE nspname = :name"),
            {"name": scratch[1]},
        )
    assert left == 0, "the scratch schema is dropped"

    # Damage the live model three ways.
    done, retried = stories[users[1]][0], stories[users[2]][1]
    before = job_row(schema_engine, done.job_id)
    with schema_engine.begin() as connection:
        connection.execute(
            text("UPDATE jobs SET status = 'failed' WHERE id = :id"), {"id": done.job_id}
        )
        last_of_job = "SELECT max(seq) FROM job_events WHERE job_id = :id"
        connection.execute(
            text(f"DELETE FROM job_events WHERE seq = ({last_of_job})"),  # noqa: S608
            {"id": retried.job_id},
        )
        connection.execute(
            text("UPDATE credit_balances SET balance = balance + 7 WHERE user_id = :id"),
            {"id": users[0]},
        )  # fmt: skip
    code, out = _rebuild(capsys, argv)
    assert code == 1, out
    assert f"job {done.job_id}: status: live 'failed', replayed 'completed'" in out
    assert f"job_events {retried.job_id}: 0 events only live, 1 only replayed" in out
    assert f"balance {users[0]}: 1 balance rows only live, 1 only replayed" in out
    assert "3 difference(s) from the live read model" in out

    code, out = _rebuild(capsys, [*argv, "--swap"])
    assert code == 0, out
    assert "live read model replaced: 1 event(s) added, 0 removed" in out
    assert job_row(schema_engine, done.job_id) == before
    code, out = _rebuild(capsys, argv)
    assert code == 0, out


def test_a_swap_waits_for_the_projection_to_stop(
    stack: StackSettings,
    make_topic: Callable[[str], TopicSpec],
    pg_schema: tuple[Engine, str],
    unique: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topics = [make_topic("jobs.lifecycle"), make_topic("credits.ledger")]
    group = f"projection-{unique}"
    with EventConsumer(
        settings=stack.kafka, group_id=group, topics=[t.name for t in topics]
    ) as member:
        deadline = time.monotonic() + 60
        while not member._consumer.assignment():
            assert time.monotonic() < deadline, "the consumer never joined its group"
            member.poll(0.2)
        argv = ["--group", group, "--topic-prefix", f"test.{unique}.", "--schema", pg_schema[1]]
        code = main(["replay", "rebuild", *argv, "--swap"])
    assert code == 2
    assert "stop genstream-projection before swapping" in capsys.readouterr().err
