"""Parked records as the dead-letter commands read them: reasons, filters, times, lines."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from genstream.deadletter_commands import parse_since, render_line
from genstream.kafka.parked import ParkedFilter, ParkedRecord

PARKED_AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _record(
    *,
    origin: str = "jobs.synthetic.free",
    error: str = "JobFailure: timeout: too slow",
    **kw: object,
) -> ParkedRecord:
    fields: dict[str, object] = {
        "partition": 2,
        "offset": 41,
        "parked_at": PARKED_AT,
        "origin": origin,
        "consumer": "genstream-workers-synthetic",
        "error": error,
        "key": b"job_1",
        "value": b"{}",
        "headers": (
            ("type", b"genstream.job.queued.v1"),
            ("id", b"event-1"),
            ("dlq.topic", origin.encode()),
            ("dlq.error", error.encode()),
        ),
    }
    fields.update(kw)
    return ParkedRecord(**fields)  # type: ignore[arg-type]


def test_a_failed_jobs_dispatch_is_told_apart_from_a_refused_record() -> None:
    failed = _record()
    refused = _record(origin="credits.ledger", error="InvalidEventError: no 'type'")
    assert (failed.failed_job, failed.reason) == (True, "timeout")
    assert (refused.failed_job, refused.reason) == (False, "InvalidEventError")
    assert failed.position == "2:41"
    assert (failed.event_type, failed.event_id) == ("genstream.job.queued.v1", "event-1")
    # What a redrive sends back: the record's own headers, not those parking added.
    assert failed.own_headers == [("type", b"genstream.job.queued.v1"), ("id", b"event-1")]


@pytest.mark.parametrize(
    ("wanted", "matches"),
    [
        (ParkedFilter(), True),
        (ParkedFilter(topic="jobs.synthetic.free"), True),
        (ParkedFilter(topic="jobs.synthetic.pro"), False),
        (ParkedFilter(reason="timeout"), True),
        (ParkedFilter(reason="too slow"), True),  # a part of the error text
        (ParkedFilter(reason="InvalidEventError"), False),
        (ParkedFilter(job_id="job_1"), True),
        (ParkedFilter(job_id="job_2"), False),
        (ParkedFilter(position="2:41"), True),
        (ParkedFilter(position="2:40"), False),
        (ParkedFilter(topic="jobs.synthetic.free", job_id="job_2"), False),  # every field counts
    ],
)
def test_a_filter_matches_on_every_field_it_was_given(wanted: ParkedFilter, matches: bool) -> None:
    assert wanted.matches(_record()) is matches


def test_since_takes_a_duration_back_from_now_or_an_instant() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert parse_since("15m", now=now) == now - timedelta(minutes=15)
    assert parse_since("2h", now=now) == now - timedelta(hours=2)
    assert parse_since("3d", now=now) == now - timedelta(days=3)
    assert parse_since("2026-12-01T08:30:00") == datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        parse_since("yesterday")


def test_a_listed_line_names_position_time_topic_reason_key_and_consumer() -> None:
    record = _record()
    line = render_line(
        {
            "position": record.position,
            "parked_at": record.parked_at.isoformat(),
            "topic": record.origin,
            "reason": record.reason,
            "key": "job_1",
            "consumer": record.consumer,
        }
    )
    assert line.split() == [
        "2:41",
        "2026-12-07",
        "12:00:00",
        "jobs.synthetic.free",
        "timeout",
        "job_1",
        "genstream-workers-synthetic",
    ]
