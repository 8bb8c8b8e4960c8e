"""Event stream metrics, served with the API's others at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

OPEN_STREAMS = Gauge("genstream_sse_streams", "Event streams open in this process")
EVENTS_SENT = Counter("genstream_sse_events_total", "Events sent on event streams", ["kind"])
OVERFLOWS = Counter(
    "genstream_sse_overflow_disconnects_total",
    "Event streams closed because their client fell too far behind",
)
REFUSED = Counter(
    "genstream_sse_refused_total",
    "Event streams refused because their user or API key had as many open as allowed",
    ["cap"],
)
STORED_READS = Counter(
    "genstream_sse_stored_reads_total",
    "Reads of stored job events for event streams: news (one per user, shared by all the "
    "user's streams) or history (one stream catching up from its own position)",
    ["reading"],
)
LINKS_SIGNED = Counter(
    "genstream_sse_links_signed_total",
    "Stored events whose download links were signed for event streams",
)
