"""Event stream ids and frames, and the queue estimate."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.events.ids import StreamPosition, comment, frame, parse_event_id
from api.events.lifecycle import event_name
from api.jobs.queue import estimate


@given(st.integers(min_value=0, max_value=10**17), st.integers(min_value=0, max_value=10**17))
def test_ids_round_trip(seq: int, progress: int) -> None:
    position = StreamPosition(seq, progress)
    assert parse_event_id(position.event_id()) == position


def test_ids_name_the_last_lifecycle_event_and_progress_since() -> None:
    assert StreamPosition(12).event_id() == "12"
    assert StreamPosition(12, 3).event_id() == "12.3"
    assert parse_event_id(" 7.2 ") == StreamPosition(7, 2)


@pytest.mark.parametrize("bad", ["", "-1", "1.", ".1", "1.0", "01", "a", "1.2.3", "9" * 19, "1 2"])
def test_ids_refuse_anything_else(bad: str) -> None:
    with pytest.raises(ValueError, match="not an event id"):
        parse_event_id(bad)


def test_a_frame_is_one_event_with_its_id() -> None:
    raw = frame(event="job.started", data={"a": "x\ny"}, event_id="5").decode()
    lines = raw.split("\n")
    assert lines[:2] == ["id: 5", "event: job.started"]
    assert json.loads(lines[2].removeprefix("data: ")) == {"a": "x\ny"}
    assert raw.endswith("\n\n")
    assert raw.count("\n") == 4
    assert comment("heartbeat") == b": heartbeat\n\n"


def test_event_names_drop_the_namespace_and_version() -> None:
    assert event_name("genstream.job.completed.v1") == "job.completed"


def test_the_estimate_spreads_the_queue_over_the_workers() -> None:
    queue = estimate(6, median_run_s=10.0, workers=3)
    assert (queue.estimated_start_s, queue.eta_s, queue.workers) == (20.0, 30.0, 3)
    assert estimate(6, median_run_s=10.0, workers=0).workers == 1
    unknown = estimate(2, median_run_s=None, workers=2)
    assert (unknown.position, unknown.eta_s, unknown.estimated_start_s) == (2, None, None)
