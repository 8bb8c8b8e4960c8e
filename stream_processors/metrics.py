"""Prometheus metrics of the stream processors."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "genstream_processor_events_total", "Events the processors handled", ["topic", "type"]
)
REJECTIONS = Counter("genstream_processor_rejections_total", "Jobs rejected", ["reason"])
ACCEPTED = Counter("genstream_processor_accepted_total", "Jobs accepted", ["tier"])
RESERVE_TO_CLOSE = Histogram(
    "genstream_processor_reserve_to_close_seconds",
    "From a job's request to the settlement or release of its credits",
    ["outcome"],
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 1800, 7200, 21600),
)
DEAD_LETTERS = Counter(
    "genstream_processor_dead_letters_total", "Records parked on the dead-letter topic", ["topic"]
)
TIER_DEPTH = Gauge(
    "genstream_tier_topic_depth",
    "Dispatched jobs not yet taken by the workload's workers",
    ["workload", "tier"],
)
EXPIRED = Counter(
    "genstream_processor_expired_total", "Queued jobs expired past their plan's deadline"
)
CREDIT_WAITS = Counter(
    "genstream_processor_credit_waits_total",
    "Requests of accounts without any credit yet, written again to wait for their grant",
)
