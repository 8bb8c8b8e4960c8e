"""How many jobs start before a queued one, and how long a job runs, from what is known now.

Pure arithmetic over counts the read model gives (``api.jobs.queue`` asks), so that the
benchmark can hold the very same estimates against the starts it sees.

- **Tiers' shares.** Workers pick pro before creator before free, but under saturation each
  tier gets its share of starts (``GENSTREAM_WORKER_SHARES``, 70/20/10). While the ``k`` jobs
  of its own tier ahead of a job start, and then it, another tier starts about
  ``share / own share`` as many jobs: all of a higher tier's in ``k + 1`` turns, a lower
  tier's in ``k`` (a job of a lower tier never goes before a waiting one of a higher tier
  unless it is owed its share). Neither more than that tier has queued.
- **Size.** A job's run time is its type's recent run time per unit of work (steps x pixels,
  seconds of video, characters, ...) times its own work, so a 4-step 512² image is not given a
  50-step 1024²'s time.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from typing import Any, Final

from contracts import JobType, Tier

__all__ = ["TIER_ORDER", "WORKER_SHARES", "median_unit_ms", "starts_ahead", "work_of"]

TIER_ORDER: Final = (Tier.PRO.value, Tier.CREATOR.value, Tier.FREE.value)
WORKER_SHARES: Final = {Tier.PRO.value: 0.7, Tier.CREATOR.value: 0.2, Tier.FREE.value: 0.1}
"""The workers' default shares of starts under saturation (``GENSTREAM_WORKER_SHARES``)."""


def starts_ahead(
    tier: str,
    same_tier_ahead: int,
    queued_by_tier: Mapping[str, int],
    shares: Mapping[str, float] = WORKER_SHARES,
) -> int:
    """The jobs expected to start before a queued job of ``tier`` with ``same_tier_ahead``
    jobs of its tier ahead of it, given the jobs queued in each tier of its workload."""
    own = shares.get(tier) or min(shares.values())
    rank = TIER_ORDER.index(tier) if tier in TIER_ORDER else len(TIER_ORDER)
    ahead = same_tier_ahead
    for other, queued in queued_by_tier.items():
        if other == tier or queued <= 0:
            continue
        higher = other in TIER_ORDER and TIER_ORDER.index(other) < rank
        turns = same_tier_ahead + 1 if higher else same_tier_ahead
        # The nudge keeps 0.7 / 0.1 * 3 at 21, not 20.999...
        ahead += min(queued, math.floor(shares.get(other, 0.0) * turns / own + 1e-9))
    return ahead


def work_of(
    job_type: JobType, job_input: Mapping[str, Any], media: Mapping[str, Any] | None
) -> float:
    """A job's amount of work in its type's own unit; at least 1."""
    match job_type:
        case JobType.IMAGE_GENERATE:
            work = _number(job_input, "steps", 30) * _pixels(job_input, 1024, 1024)
        case JobType.IMAGE_EDIT:
            work = _number(job_input, "steps", 30) * _pixels(media or {}, 1024, 1024)
        case JobType.VIDEO_GENERATE:
            frames = _number(job_input, "duration_s", 1) * _number(job_input, "fps", 8)
            work = frames * _pixels(job_input, 1024, 576)
        case JobType.VIDEO_ENHANCE:
            scale = _number(job_input, "scale", 2)
            work = _number(media or {}, "duration_s", 1) * _pixels(media or {}, 1, 1) * scale**2
        case JobType.AUDIO_SPEECH:
            work = float(len(str(job_input.get("text", ""))))
        case _:
            work = _number(job_input, "steps", 10) * _number(job_input, "step_ms", 100)
    return max(1.0, work)


def median_unit_ms(runs: Iterable[tuple[int, float]]) -> float | None:
    """The median run time per unit of work of ``(run_ms, work)`` pairs; ``None`` for none."""
    per_unit = [run_ms / max(1.0, work) for run_ms, work in runs]
    return statistics.median(per_unit) if per_unit else None


def _number(values: Mapping[str, Any], key: str, default: float) -> float:
    value = values.get(key)
    return float(value) if isinstance(value, int | float) and value > 0 else default


def _pixels(values: Mapping[str, Any], width: float, height: float) -> float:
    return _number(values, "width", width) * _number(values, "height", height) / 1e6
