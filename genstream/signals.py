"""SIGTERM and SIGINT as a request to stop, for the services that loop until an event is set.

A Python signal handler runs in the main thread between two bytecodes, possibly while that
thread is inside ``Event.wait`` holding the event's internal lock, which is not reentrant:
setting the event from the handler would then wait for itself forever. The handler hands the
request to a short-lived thread, which takes the lock once the main thread lets it go.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

__all__ = ["stop_on_signals"]


def stop_on_signals(stop: threading.Event, *, log: logging.Logger, message: str) -> None:
    """Sets ``stop`` on SIGTERM or SIGINT, logging ``message`` with the signal's name."""

    def request(name: str) -> None:
        log.info(message, extra={"signal": name})
        stop.set()

    def handler(signum: int, _: FrameType | None) -> None:
        name = signal.Signals(signum).name
        threading.Thread(target=request, args=(name,), name="stop-request", daemon=True).start()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
