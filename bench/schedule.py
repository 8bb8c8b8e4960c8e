"""Open-loop arrival schedules: every send time is fixed before the first request goes out.

A closed loop (send, wait, send) slows down with the server and so hides its queueing; a
schedule made in advance does not, and latency is measured from the scheduled time, so
time a request spent waiting to be sent counts against the system.
"""

from __future__ import annotations

__all__ = ["open_loop_schedule"]


def open_loop_schedule(rate_per_s: float, duration_s: float, *, start: float = 0.0) -> list[float]:
    """Send times at a fixed rate, evenly spaced, from ``start`` for ``duration_s`` seconds."""
    if rate_per_s <= 0:
        raise ValueError(f"rate must be positive, got {rate_per_s}")
    if duration_s < 0:
        raise ValueError(f"duration must not be negative, got {duration_s}")
    count = round(rate_per_s * duration_s)
    interval = 1.0 / rate_per_s
    return [start + i * interval for i in range(count)]
