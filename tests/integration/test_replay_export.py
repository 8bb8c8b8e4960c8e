"""``genstream replay export``: a time range of the lifecycle and ledger, as Parquet files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer

from contracts import (
    CreditsGranted,
    CreditsReserved,
    Envelope,
    Event,
    JobAccepted,
    JobCompleted,
    JobFailed,
    JobStarted,
    JobType,
    OutputFile,
    Tier,
    TopicSpec,
    encode,
    kafka_headers,
    partition_key,
)
from genstream.cli import main as cli
from genstream.replay import SCHEMA
from genstream.settings import StackSettings

pytestmark = pytest.mark.integration

# The range under test; records are stamped explicitly around it.
END = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
START = END - timedelta(hours=1)


class Writer:
    """Writes envelopes with a chosen record timestamp, which is what the range is about."""

    def __init__(self, stack: StackSettings) -> None:
        self._producer = Producer(stack.kafka.producer_config())

    def write(self, spec: TopicSpec, envelope: Envelope[Any]) -> None:
        self._producer.produce(
            spec.name,
            value=encode(envelope),
            key=partition_key(envelope, spec),
            headers=list[tuple[str, str | bytes | None]](kafka_headers(envelope)),
            timestamp=int(envelope.time.timestamp() * 1000),
        )

    def write_raw(self, spec: TopicSpec, value: bytes, at: datetime) -> None:
        self._producer.produce(
            spec.name, value=value, key=b"junk", timestamp=int(at.timestamp() * 1000)
        )

    def flush(self) -> None:
        assert self._producer.flush(30) == 0


@pytest.fixture
def writer(stack: StackSettings) -> Iterator[Writer]:
    writer = Writer(stack)
    yield writer
    writer.flush()


def _at(data: Event, user_id: str, moment: datetime) -> Envelope[Any]:
    return Envelope.wrap(data, user_id=user_id, source="genstream/tests", time=moment)


def _job_events(job_id: str, user_id: str, moment: datetime) -> list[Envelope[Any]]:
    step = timedelta(seconds=1)
    return [
        _at(
            JobAccepted(
                job_id=job_id, job_type=JobType.SYNTHETIC, tier=Tier.PRO, credits_reserved=2
            ),
            user_id,
            moment,
        ),
        _at(JobStarted(job_id=job_id, worker_id="worker-7", attempt=1), user_id, moment + step),
        _at(
            JobCompleted(
                job_id=job_id,
                attempt=1,
                worker_id="worker-7",
                outputs=(OutputFile(key=f"o/{job_id}", size=1, content_type="image/png"),),
                run_ms=5,
                usage_units=1,
            ),
            user_id,
            moment + 2 * step,
        ),
    ]


def _ledger(user_id: str, n: int, moment: datetime) -> Envelope[Any]:
    if n % 2:
        data: Event = CreditsReserved(idempotency_key=f"r-{n}", job_id=f"job-{n}", amount=n)
    else:
        data = CreditsGranted(idempotency_key=f"g-{n}", amount=10 + n, reason="signup")
    return _at(data, user_id, moment)


def test_export_writes_the_events_of_the_range_once_each(
    stack: StackSettings,
    make_topic: Callable[[str], TopicSpec],
    writer: Writer,
    unique: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lifecycle = make_topic("jobs.lifecycle")
    ledger = make_topic("credits.ledger")
    user = f"user-{unique}"
    before, after = START - timedelta(minutes=20), END + timedelta(minutes=5)

    for envelope in _job_events(f"early-{unique}", user, before):
        writer.write(lifecycle, envelope)
    in_range: list[Envelope[Any]] = []
    for n in range(6):
        in_range += _job_events(f"job-{unique}-{n}", user, START + timedelta(minutes=5 * n))
    failed = _at(
        JobFailed(
            job_id=f"job-{unique}-x",
            attempt=2,
            error_code="oom",
            error_message="m",
            retryable=False,
        ),
        user,
        START,
    )
    in_range.append(failed)
    for envelope in in_range:
        writer.write(lifecycle, envelope)
    # Copies written again after a crash share the event id; a record that is no event.
    for envelope in in_range[:4]:
        writer.write(lifecycle, envelope)
    writer.write_raw(lifecycle, b"{not json", START + timedelta(minutes=1))
    for envelope in _job_events(f"late-{unique}", user, after):
        writer.write(lifecycle, envelope)

    ledger_in_range = [
        _ledger(f"{user}-{n % 3}", n, START + timedelta(seconds=n)) for n in range(7)
    ]
    writer.write(ledger, _ledger(user, 100, before))
    for envelope in ledger_in_range:
        writer.write(ledger, envelope)
    writer.write(ledger, ledger_in_range[0])
    writer.write(ledger, _ledger(user, 101, END))  # the end is exclusive
    writer.flush()

    out = tmp_path / "export"
    code = cli(
        [
            "replay",
            "export",
            "--from",
            START.isoformat(),
            "--to",
            END.isoformat().replace("+00:00", "Z"),
            "--out",
            str(out),
            "--topic-prefix",
            f"test.{unique}.",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert f"{lifecycle.name}: {len(in_range)} event(s)" in printed
    assert "4 duplicate(s) dropped, 1 undecodable skipped" in printed
    assert f"{ledger.name}: {len(ledger_in_range)} event(s)" in printed
    assert f"{len(in_range) + len(ledger_in_range)} event(s) exported" in printed

    jobs = pq.read_table(out / f"{lifecycle.name}.parquet")
    assert jobs.schema.equals(SCHEMA)
    assert jobs.num_rows == len(in_range)
    rows = jobs.to_pylist()
    assert sorted(row["event_id"] for row in rows) == sorted(e.id for e in in_range)
    by_id = {row["event_id"]: row for row in rows}
    completed = next(e for e in in_range if isinstance(e.data, JobCompleted))
    row = by_id[completed.id]
    assert (row["status"], row["worker_id"], row["attempt"]) == ("completed", "worker-7", 1)
    assert row["job_id"] == completed.data.job_id
    assert row["user_id"] == user
    assert row["trace"] == completed.trace
    assert row["time"] == completed.time
    assert row["topic"] == lifecycle.name
    accepted = next(e for e in in_range if isinstance(e.data, JobAccepted))
    assert (by_id[accepted.id]["tier"], by_id[accepted.id]["status"]) == ("pro", "accepted")
    assert (by_id[failed.id]["error_code"], by_id[failed.id]["status"]) == ("oom", "failed")

    credits = pq.read_table(out / f"{ledger.name}.parquet").to_pylist()
    assert sorted(row["event_id"] for row in credits) == sorted(e.id for e in ledger_in_range)
    amounts = {row["event_id"]: row["amount"] for row in credits}
    assert amounts == {e.id: e.data.amount for e in ledger_in_range}
    assert all(row["status"] is None for row in credits)


def test_export_of_an_empty_range_writes_empty_files(
    make_topic: Callable[[str], TopicSpec],
    unique: str,
    tmp_path: Path,
) -> None:
    make_topic("jobs.lifecycle")
    make_topic("credits.ledger")
    code = cli(
        [
            "replay",
            "export",
            "--from",
            "2001-01-01T00:00:00",
            "--to",
            "2001-01-02T00:00:00+00:00",
            "--out",
            str(tmp_path),
            "--topic-prefix",
            f"test.{unique}.",
        ]
    )
    assert code == 0
    for name in ("jobs.lifecycle", "credits.ledger"):
        assert pq.read_table(tmp_path / f"test.{unique}.{name}.parquet").num_rows == 0


def test_export_refuses_a_range_that_ends_before_it_starts(tmp_path: Path) -> None:
    arguments = ["replay", "export", "--from", "2026-01-02", "--to", "2026-01-01"]
    assert cli([*arguments, "--out", str(tmp_path)]) == 2
    assert not list(tmp_path.iterdir())
