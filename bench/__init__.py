"""genstream's benchmarks: open-loop loads against the real stack and a Celery + Redis peer.

``python -m bench`` (``make bench``) runs every workload and writes
``bench/results/latest.json``; the pure pieces (statistics, schedules, the report) are
importable on their own and unit-tested.
"""

from bench.report import TARGETS, Target, build_document, evaluate_targets, render_table
from bench.schedule import open_loop_schedule
from bench.stats import Spread, latency_summary, percentile, spread

__all__ = [
    "TARGETS",
    "Spread",
    "Target",
    "build_document",
    "evaluate_targets",
    "latency_summary",
    "open_loop_schedule",
    "percentile",
    "render_table",
    "spread",
]
