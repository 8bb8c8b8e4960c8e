"""A write waits out a database outage; a wrong statement still fails at once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from genstream.db.outages import is_outage, through_outages


def _down() -> OperationalError:
    return OperationalError("INSERT", {}, Exception("the database system is shutting down"))


def test_the_action_is_tried_again_until_the_database_is_back() -> None:
    failures = [_down(), InterfaceError("SELECT", {}, Exception("connection closed"))]
    calls = []

    def write() -> int:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return 7

    outcome = through_outages(write, stop=threading.Event(), what="a test", first_wait_s=0.001)
    assert outcome == (7,)
    assert len(calls) == 3


def test_an_error_that_is_not_an_outage_is_raised_at_once() -> None:
    calls = []

    def write() -> int:
        calls.append(1)
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    with pytest.raises(IntegrityError):
        through_outages(write, stop=threading.Event(), what="a test", first_wait_s=0.001)
    assert len(calls) == 1


def test_stopping_during_an_outage_gives_up_without_a_result() -> None:
    stop = threading.Event()

    def write() -> int:
        stop.set()
        raise _down()

    assert through_outages(write, stop=stop, what="a test", first_wait_s=60) is None


def test_an_invalidated_connection_counts_as_an_outage() -> None:
    error = IntegrityError("INSERT", {}, Exception("x"), connection_invalidated=True)
    assert is_outage(error)
    assert is_outage(_down())
    assert not is_outage(IntegrityError("INSERT", {}, Exception("duplicate key")))
