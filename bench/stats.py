"""Percentiles of latencies, and the median-with-spread of repeated runs."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Spread", "latency_summary", "percentile", "spread"]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank method; NaN for no values.

    Nearest rank, not interpolation: a reported p99 is a latency some request really had.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | int]:
    """Count, p50, p90, p99 and max of one run's latencies, in milliseconds."""
    return {
        "count": len(latencies_ms),
        "p50_ms": _round(percentile(latencies_ms, 50)),
        "p90_ms": _round(percentile(latencies_ms, 90)),
        "p99_ms": _round(percentile(latencies_ms, 99)),
        "max_ms": _round(max(latencies_ms)) if latencies_ms else math.nan,
    }


@dataclass(frozen=True, slots=True)
class Spread:
    """One figure over repeated runs: the median, and the smallest and largest run."""

    median: float
    min: float
    max: float
    runs: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "median": _round(self.median),
            "min": _round(self.min),
            "max": _round(self.max),
            "runs": [_round(run) for run in self.runs],
        }


def spread(runs: Sequence[float]) -> Spread:
    """The median and range of ``runs``, ignoring runs that produced no figure (NaN)."""
    real = [run for run in runs if not math.isnan(run)]
    if not real:
        return Spread(math.nan, math.nan, math.nan, tuple(runs))
    return Spread(statistics.median(real), min(real), max(real), tuple(runs))


def _round(value: float) -> float:
    return value if math.isnan(value) or math.isinf(value) else round(value, 3)
