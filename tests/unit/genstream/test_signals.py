"""A stop signal sets the service's stop event, even when it lands inside ``Event.wait``."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator

import pytest

from genstream.signals import stop_on_signals

_log = logging.getLogger(__name__)


@pytest.fixture
def restored_handlers() -> Iterator[None]:
    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


@pytest.mark.usefixtures("restored_handlers")
@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_sets_the_stop_event(number: signal.Signals) -> None:
    stop = threading.Event()
    stop_on_signals(stop, log=_log, message="stopping")
    os.kill(os.getpid(), number)
    assert stop.wait(10)


@pytest.mark.usefixtures("restored_handlers")
def test_a_signal_while_the_event_lock_is_held_does_not_deadlock() -> None:
    stop = threading.Event()
    stop_on_signals(stop, log=_log, message="stopping")
    # As inside Event.wait between taking its lock and waiting: a handler that set the event
    # itself would block on that lock here, in the thread that holds it, for ever.
    with stop._cond:  # type: ignore[attr-defined]
        os.kill(os.getpid(), signal.SIGTERM)
        assert not stop.is_set()
    assert stop.wait(10)
