"""The outcome agent passes over, by their type header, lifecycle records no account needs."""

from __future__ import annotations

from contracts import (
    REGISTRY,
    JobAccepted,
    JobCancelled,
    JobCompleted,
    JobExpired,
    JobFailed,
    JobPreview,
    JobQueued,
    JobStarted,
)
from contracts.codec import HEADER_TYPE, header_type
from stream_processors.app import _NOT_OUTCOMES


def test_outcomes_are_read_and_the_rest_of_the_lifecycle_is_not() -> None:
    for outcome in (JobStarted, JobCompleted, JobFailed, JobCancelled, JobExpired):
        assert outcome.wire_type() not in _NOT_OUTCOMES
    for other in (JobAccepted, JobQueued, JobPreview):
        assert other.wire_type() in _NOT_OUTCOMES
    assert _NOT_OUTCOMES.issubset(REGISTRY.models)


def test_the_type_header_is_found_whatever_its_case_and_missing_is_none() -> None:
    wire = JobAccepted.wire_type()
    assert header_type([("ce_id", b"1"), (HEADER_TYPE, wire.encode())]) == wire
    assert header_type([(HEADER_TYPE.upper(), wire.encode())]) == wire
    assert header_type([("ce_type", wire.encode())]) == wire  # records written before
    assert header_type([("content-type", b"application/json")]) is None
    # A record with no type, or one not known, is not passed over: it is decoded and parked.
    assert header_type([]) not in _NOT_OUTCOMES
    assert "genstream.job.nonsense.v1" not in _NOT_OUTCOMES
