"""Event stream metrics, served with the API's others at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

OPEN_STREAMS = Gauge("genstream_sse_streams", "Event streams open in this process")
EVENTS_SENT = Counter("genstream_sse_events_total", "Events sent on event streams", ["kind"])
OVERFLOWS = Counter(
    "genstream_sse_overflow_disconnects_total",
    "Event streams closed because their client fell too far behind",
)
