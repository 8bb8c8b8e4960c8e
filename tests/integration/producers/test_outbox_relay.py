"""The outbox relay against the real PostgreSQL and Kafka: every staged event lands once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from contracts import CreditsGranted, Envelope, TopicSpec
from genstream.db import sync_engine
from genstream.kafka import EventConsumer
from genstream.kafka.partitioner import partition_for
from genstream.settings import StackSettings
from producers import EventProducer
from producers.outbox import outbox_message
from producers.outbox_relay import OutboxRelay

ROOT = Path(__file__).resolve().parents[3]
_NOT_READY = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._UNKNOWN_TOPIC,
}


@pytest.fixture
def engine(stack: StackSettings, pg_schema: tuple[Engine, str]) -> Iterator[Engine]:
    """An engine whose queries see the test's schema, as the relay's does."""
    _, schema = pg_schema
    engine = sync_engine(stack.pg, schema=schema)
    yield engine
    engine.dispose()


@pytest.fixture
def relay(stack: StackSettings, engine: Engine) -> Iterator[OutboxRelay]:
    with OutboxRelay(engine=engine, kafka=stack.kafka, batch_size=100) as relay:
        yield relay


def _granted(user_id: str, n: int) -> Envelope[CreditsGranted]:
    data = CreditsGranted(amount=n + 1, reason="test", idempotency_key=f"grant:{user_id}:{n}")
    return Envelope.wrap(data, user_id=user_id, source="genstream/tests")


def _stage(engine: Engine, spec: TopicSpec, envelopes: list[Envelope[CreditsGranted]]) -> None:
    with Session(engine) as session, session.begin():
        session.add_all([outbox_message(spec, envelope) for envelope in envelopes])


def _unpublished(engine: Engine) -> int:
    with engine.connect() as connection:
        query = text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        count: int = connection.execute(query).scalar_one()
    return count


def _progress(engine: Engine) -> tuple[int, int]:
    """Rows unpublished, and among them those a relay recorded as about to be sent."""
    with engine.connect() as connection:
        query = text("SELECT count(*), count(in_doubt_from) FROM outbox WHERE published_at IS NULL")
        unpublished, in_doubt = connection.execute(query).one()
    return int(unpublished), int(in_doubt)


def _end_offset(stack: StackSettings, topic: str, partition: int) -> int:
    probe = Consumer(stack.kafka.librdkafka(**{"group.id": "genstream-tests-probe"}))
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                _, high = probe.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10, cached=False
                )
                return int(high)
            except KafkaException as exc:
                # A topic just created is unknown, then leaderless, for a moment.
                if exc.args[0].code() not in _NOT_READY:
                    raise
                assert time.monotonic() < deadline, f"{topic} [{partition}] has no leader"
    finally:
        probe.close()


def _on_topic(stack: StackSettings, spec: TopicSpec, unique: str) -> Counter[str]:
    """How many times each event id is on the topic, reading every partition from 0."""
    total = sum(_end_offset(stack, spec.name, p) for p in range(spec.partitions))
    with EventConsumer(
        settings=stack.kafka,
        group_id=f"test-{unique}",
        assignments=[(spec.name, p, 0) for p in range(spec.partitions)],
    ) as consumer:
        events = consumer.drain(until=lambda got: len(got) >= total, timeout_s=60)
    assert len(events) == total
    for event in events:
        assert event.key is not None
        assert event.partition == partition_for(event.key, spec.partitions)
    return Counter(event.headers["id"].decode() for event in events)


def _mark_in_doubt(
    engine: Engine, envelope: Envelope[CreditsGranted], partition: int, start: int
) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE outbox SET partition = :partition, in_doubt_from = :start "
                "WHERE event_id = CAST(:event_id AS uuid)"
            ),
            {"partition": partition, "start": start, "event_id": envelope.id},
        )


def test_drain_publishes_each_staged_event_once(
    stack: StackSettings,
    make_topic: Callable[[str], TopicSpec],
    engine: Engine,
    relay: OutboxRelay,
    unique: str,
) -> None:
    spec = make_topic("credits.ledger")
    staged = [_granted(f"user-{unique}-{n % 40}", n) for n in range(300)]
    _stage(engine, spec, staged)

    assert relay.drain(60) == 300

    assert _on_topic(stack, spec, unique) == Counter({e.id: 1 for e in staged})
    assert _unpublished(engine) == 0
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT key, partition, in_doubt_from FROM outbox")).all()
    assert all(r.partition == partition_for(r.key, spec.partitions) for r in rows)
    assert all(r.in_doubt_from is not None for r in rows)
    assert relay.drain(5) == 0


def test_in_doubt_rows_are_sent_only_when_not_already_written(
    stack: StackSettings,
    make_topic: Callable[[str], TopicSpec],
    engine: Engine,
    relay: OutboxRelay,
    unique: str,
) -> None:
    spec = make_topic("credits.ledger")
    written, lost = _granted(f"user-{unique}-a", 1), _granted(f"user-{unique}-b", 2)
    _stage(engine, spec, [written, lost])
    # A relay recorded both rows and died; only ``written`` reached the broker before it did.
    for envelope in (written, lost):
        partition = partition_for(envelope.user_id.encode(), spec.partitions)
        _mark_in_doubt(engine, envelope, partition, _end_offset(stack, spec.name, partition))
    with EventProducer(settings=stack.kafka) as producer:
        delivery = producer.send_and_wait(spec, written)
        # Later traffic on the partition must not hide the in-doubt record from the search.
        producer.send_and_wait(spec, _granted(written.user_id, 3))
    assert delivery.partition == partition_for(written.user_id.encode(), spec.partitions)

    assert relay.drain(30) == 2

    on_topic = _on_topic(stack, spec, unique)
    assert (on_topic[written.id], on_topic[lost.id]) == (1, 1)
    assert _unpublished(engine) == 0


def test_rows_for_a_missing_topic_hold_back_nothing_else(
    stack: StackSettings,
    make_topic: Callable[[str], TopicSpec],
    engine: Engine,
    relay: OutboxRelay,
    unique: str,
) -> None:
    spec = make_topic("credits.ledger")
    missing = spec.prefixed("absent.")
    _stage(engine, missing, [_granted(f"user-{unique}", 0)])
    staged = [_granted(f"user-{unique}", n) for n in range(1, 6)]
    _stage(engine, spec, staged)

    with pytest.raises(TimeoutError, match="1 outbox rows unpublished"):
        relay.drain(2)

    assert _on_topic(stack, spec, unique) == Counter({e.id: 1 for e in staged})
    assert _unpublished(engine) == 1


def test_concurrent_relays_publish_each_event_once(
    stack: StackSettings,
    make_topic: Callable[[str], TopicSpec],
    engine: Engine,
    unique: str,
) -> None:
    spec = make_topic("credits.ledger")
    staged = [_granted(f"user-{unique}-{n % 64}", n) for n in range(1500)]
    _stage(engine, spec, staged)
    relays = [OutboxRelay(engine=engine, kafka=stack.kafka, batch_size=50) for _ in range(3)]
    counts: list[int] = []
    errors: list[BaseException] = []

    def drain(relay: OutboxRelay) -> None:
        try:
            counts.append(relay.drain(90))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(relay,)) for relay in relays]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=100)
    finally:
        for relay in relays:
            relay.close()

    assert errors == []
    assert sum(counts) == 1500
    assert _on_topic(stack, spec, unique) == Counter({e.id: 1 for e in staged})
    assert _unpublished(engine) == 0


def test_running_relay_publishes_new_rows_and_stops_when_asked(
    stack: StackSettings,
    make_topic: Callable[[str], TopicSpec],
    engine: Engine,
    relay: OutboxRelay,
    unique: str,
) -> None:
    spec = make_topic("credits.ledger")
    stop = threading.Event()
    runner = threading.Thread(target=relay.run, args=(stop,), kwargs={"idle_wait_s": 0.05})
    runner.start()
    try:
        staged = [_granted(f"user-{unique}", n) for n in range(20)]
        _stage(engine, spec, staged)
        deadline = time.monotonic() + 30
        while _unpublished(engine) and time.monotonic() < deadline:
            stop.wait(0.02)
        assert _unpublished(engine) == 0
    finally:
        stop.set()
        runner.join(timeout=30)
    assert not runner.is_alive()
    assert _on_topic(stack, spec, unique) == Counter({e.id: 1 for e in staged})


def _relay_process(
    stack: StackSettings, schema: str, log: Path, *arguments: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "GENSTREAM_KAFKA__BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
        "GENSTREAM_PG__HOST": stack.pg.host,
        "GENSTREAM_PG__PORT": str(stack.pg.port),
        "GENSTREAM_PG__USER": stack.pg.user,
        "GENSTREAM_PG__PASSWORD": stack.pg.password.get_secret_value(),
        "GENSTREAM_PG__DATABASE": stack.pg.database,
        "GENSTREAM_OUTBOX_PG_SCHEMA": schema,
        "GENSTREAM_OUTBOX_BATCH_SIZE": "25",
        "GENSTREAM_OUTBOX_IDLE_WAIT_S": "0.05",
    }
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "producers.outbox_main", *arguments],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def test_relay_killed_mid_way_publishes_each_event_once_after_restart(
    stack: StackSettings,
    make_topic: Callable[[str], TopicSpec],
    pg_schema: tuple[Engine, str],
    engine: Engine,
    unique: str,
    tmp_path: Path,
) -> None:
    _, schema = pg_schema
    spec = make_topic("credits.ledger")
    staged = [_granted(f"user-{unique}-{n % 100}", n) for n in range(2000)]
    _stage(engine, spec, staged)
    log = tmp_path / "relay.log"

    # Killed while a batch is in flight: recorded in doubt, sent or not, not yet marked. The
    # batch may complete between the look and the kill; then a new relay is killed likewise.
    in_doubt = 0
    for _ in range(5):
        relay = _relay_process(stack, schema, log)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                unpublished, in_doubt = _progress(engine)
                if (unpublished <= 1800 and in_doubt) or not unpublished:
                    break
                assert relay.poll() is None, log.read_text()
            relay.send_signal(signal.SIGKILL)
        finally:
            relay.kill()
            relay.wait(timeout=30)
        unpublished, in_doubt = _progress(engine)
        if in_doubt:
            break
    assert 0 < unpublished <= 1800, log.read_text()
    assert in_doubt > 0

    restarted = _relay_process(stack, schema, log, "--drain", "--drain-timeout", "90")
    assert restarted.wait(timeout=120) == 0, log.read_text()

    assert _on_topic(stack, spec, unique) == Counter({e.id: 1 for e in staged})
    assert _unpublished(engine) == 0


def test_relay_stops_gracefully_on_sigterm(
    stack: StackSettings,
    make_topic: Callable[[str], TopicSpec],
    pg_schema: tuple[Engine, str],
    engine: Engine,
    unique: str,
    tmp_path: Path,
) -> None:
    _, schema = pg_schema
    spec = make_topic("credits.ledger")
    staged = [_granted(f"user-{unique}", n) for n in range(10)]
    _stage(engine, spec, staged)
    log = tmp_path / "relay.log"

    process = _relay_process(stack, schema, log)
    try:
        deadline = time.monotonic() + 60
        while _unpublished(engine) and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        process.kill()
        process.wait(timeout=30)
    assert _unpublished(engine) == 0
    assert '"outbox relay stopped"' in log.read_text()
