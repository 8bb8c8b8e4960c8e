"""The result document (``latest.json``), its targets, and the table printed at the end.

Each workload's section keeps its headline figures as plain numbers (medians over the
repeated runs) and their spread under ``spread``; ``ratios`` divides genstream's figures by
the peer's for every key they share, and ``targets`` says which goals were met.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

__all__ = [
    "SHARED_WORKLOADS",
    "TARGETS",
    "WORKLOADS",
    "Target",
    "build_document",
    "evaluate_targets",
    "ratios",
    "render_table",
]

SCHEMA_VERSION: Final = 1
WORKLOADS: Final = (
    "submit",
    "dispatch",
    "sse",
    "pipeline",
    "priority",
    "fairness",
    "overhead",
    "replay",
)
SHARED_WORKLOADS: Final = ("submit", "dispatch", "pipeline", "priority", "fairness")
"""The workloads the Celery peer runs too."""

_NOT_FIGURES: Final = frozenset({"elapsed_s"})
"""Bookkeeping, not a measurement: no ratio."""

_OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "<": operator.lt,
}


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    path: str
    """Where the measured figure is, as ``section.key``."""
    op: Literal[">=", "<=", "<"]
    threshold: float | str
    """A number, or the path of a figure the run measured (a limit that depends on it)."""
    description: str


TARGETS: Final = (
    Target("submit_rate", "submit.max_rate_p99_50ms", ">=", 2500, "submit >= 2,500/s, p99 < 50 ms"),
    Target("submit_p99_1000", "submit.p99_ms_at_1000", "<=", 25, "submit p99 <= 25 ms at 1,000/s"),
    Target("dispatch_p50", "dispatch.p50_ms", "<=", 15, "dispatch p50 <= 15 ms"),
    Target("dispatch_p99", "dispatch.p99_ms", "<=", 60, "dispatch p99 <= 60 ms"),
    Target("pipeline_rate", "pipeline.jobs_per_s", ">=", 1000, "pipeline >= 1,000 jobs/s"),
    Target("pipeline_vs_peer", "ratios.pipeline.jobs_per_s", ">=", 1.5, "pipeline >= 1.5x peer"),
    Target(
        "priority_pro_wait",
        "priority.pro_wait_p99_ms",
        "<=",
        "priority.pro_wait_limit_ms",
        "pro wait p99 <= one service time + 100 ms",
    ),
    Target("priority_free_share", "priority.free_share", ">=", 0.10, "free share >= 10 %"),
    Target(
        "fairness_late_wait",
        "fairness.late_wait_service_times",
        "<=",
        3,
        "another user's job behind a backlog waits <= 3 service times",
    ),
    Target("overhead_ratio", "overhead.ratio", ">=", 0.98, "overhead ratio >= 0.98"),
    Target(
        "sse_p99", "sse.p99_ms_at_10000", "<=", 50, "sse p99 <= 50 ms, 10,000 clients, one process"
    ),
    Target(
        "sse_memory",
        "sse.rss_kib_per_client_at_10000",
        "<=",
        30,
        "sse <= 30 KiB per client at 10,000 clients",
    ),
    Target("replay_rate", "replay.events_per_s", ">=", 50_000, "replay rebuild >= 50,000 events/s"),
)


def _lookup(document: Mapping[str, Any], path: str) -> Any:
    node: Any = document
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def evaluate_targets(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value, its threshold and ``met`` (None: not measured)."""
    verdicts = []
    for target in TARGETS:
        value = _number(_lookup(document, target.path))
        threshold = (
            _number(_lookup(document, target.threshold))
            if isinstance(target.threshold, str)
            else float(target.threshold)
        )
        met = None if value is None or threshold is None else _OPS[target.op](value, threshold)
        verdicts.append(
            {
                "name": target.name,
                "description": target.description,
                "value": value,
                "op": target.op,
                "threshold": threshold,
                "met": met,
            }
        )
    return verdicts


def ratios(ours: Mapping[str, Any], peer: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """genstream / peer for every numeric top-level key two shared workloads both have."""
    out: dict[str, dict[str, float]] = {}
    for workload in SHARED_WORKLOADS:
        mine, theirs = ours.get(workload) or {}, peer.get(workload) or {}
        shared: dict[str, float] = {}
        for key in sorted((set(mine) & set(theirs)) - _NOT_FIGURES):
            a, b = _number(mine[key]), _number(theirs[key])
            if a is not None and b is not None and b != 0:
                shared[key] = round(a / b, 3)
        if shared:
            out[workload] = shared
    return out


def build_document(
    *,
    config: Mapping[str, Any],
    machine: Mapping[str, Any],
    ours: Mapping[str, Any],
    peer: Mapping[str, Any],
    notes: list[str] | None = None,
    generated_at: datetime | None = None,
) -> dict[str, Any]:
    """The whole result document, in the shape ``latest.json`` has."""
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": (generated_at or datetime.now(UTC)).isoformat(),
        "config": dict(config),
        "machine": dict(machine),
    }
    for workload in WORKLOADS:
        document[workload] = dict(ours.get(workload) or {"status": "not_run"})
    document["peer_celery"] = {w: dict(peer[w]) for w in SHARED_WORKLOADS if w in peer}
    document["ratios"] = ratios(ours, peer)
    document["targets"] = evaluate_targets(document)
    document["notes"] = list(notes or [])
    return document


# -- the table ------------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "-" if value is None else str(value)
    if number.is_integer() and abs(number) < 1e15:
        return f"{number:,.0f}"
    if abs(number) >= 100:
        return f"{number:,.0f}"
    return f"{number:.3g}" if abs(number) < 1 else f"{number:.1f}"


def _with_spread(section: Mapping[str, Any], key: str) -> str:
    value = section.get(key)
    if value is None:
        return "-"
    band = (section.get("spread") or {}).get(key)
    if isinstance(band, Mapping) and len(band.get("runs", ())) > 1:
        return f"{_fmt(value)} [{_fmt(band.get('min'))}-{_fmt(band.get('max'))}]"
    return _fmt(value)


def _rows(document: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    peer = document.get("peer_celery") or {}
    for workload in WORKLOADS:
        section = document.get(workload) or {}
        if "status" in section:
            rows.append((workload, str(section["status"]), "", ""))
            continue
        theirs = peer.get(workload) or {}
        shared = (document.get("ratios") or {}).get(workload) or {}
        for key, value in section.items():
            if key == "spread" or _number(value) is None:
                continue
            rows.append(
                (
                    f"{workload}.{key}",
                    _with_spread(section, key),
                    _with_spread(theirs, key) if key in theirs else "",
                    _fmt(shared[key]) if key in shared else "",
                )
            )
    return rows


def _grid(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * width for width in widths)
    out = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return out


def render_table(document: Mapping[str, Any]) -> str:
    """The figures (median [min-max] over runs) beside the peer's, then the targets."""
    lines = _grid(("figure", "genstream", "celery peer", "ratio"), _rows(document))
    lines.append("")
    verdict_rows = []
    for verdict in document.get("targets") or []:
        met = verdict["met"]
        state = "not measured" if met is None else ("met" if met else "MISSED")
        limit = f"{verdict['op']} {_fmt(verdict['threshold'])}"
        verdict_rows.append((verdict["description"], _fmt(verdict["value"]), limit, state))
    lines += _grid(("target", "measured", "goal", "verdict"), verdict_rows)
    return "\n".join(lines)
