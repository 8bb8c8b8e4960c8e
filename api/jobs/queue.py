"""Where a queued job stands: the jobs that will start before it, and the wait and run ahead.

All of it comes from the read model. The position counts the jobs that will really start
first (``api.jobs.eta``): those of its workload and tier queued before it, and the other
tiers' share of starts meanwhile. The wait spreads the median of the job type's recent run
times over the workers recently seen serving the workload; the job's own run is the type's
recent time per unit of work times its own work.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from api.jobs.eta import median_unit_ms, starts_ahead, work_of
from api.read_settings import ReadSettings
from contracts import WORKLOADS, JobStatus, JobType, workload_of

__all__ = ["QueueEstimate", "estimate", "estimate_queue"]

_POSITION = text(
    """
    SELECT count(*) FROM jobs
    WHERE status = :queued AND tier = :tier AND type IN :types
      AND (queued_at, id) < (:queued_at, :job_id)
    """
).bindparams(bindparam("types", expanding=True))

_QUEUED_BY_TIER = text(
    """
    SELECT tier, count(*) FROM jobs
    WHERE status = :queued AND type IN :types AND tier IS NOT NULL
    GROUP BY tier
    """
).bindparams(bindparam("types", expanding=True))

_RECENT_RUNS = text(
    """
    SELECT run_ms, input, media FROM jobs
    WHERE type = :type AND status = :completed AND run_ms IS NOT NULL
    ORDER BY finished_at DESC LIMIT :runs
    """
)

_RUNNING = text(
    """
    SELECT extract(epoch FROM now() - started_at) FROM jobs
    WHERE status = :running AND type IN :types AND started_at IS NOT NULL
    """
).bindparams(bindparam("types", expanding=True))

_WORKERS = text(
    """
    SELECT count(DISTINCT worker_id) FROM jobs
    WHERE type IN :types AND worker_id IS NOT NULL
      AND started_at >= now() - make_interval(secs => :window_s)
    """
).bindparams(bindparam("types", expanding=True))


@dataclass(frozen=True, slots=True)
class QueueEstimate:
    position: int
    workers: int
    median_run_s: float | None
    estimated_start_s: float | None
    eta_s: float | None
    run_s: float | None = None
    """This job's own expected run, scaled by its work."""
    same_tier_ahead: int | None = None


def estimate(
    position: int,
    *,
    median_run_s: float | None,
    workers: int,
    run_s: float | None = None,
    same_tier_ahead: int | None = None,
    running_left_s: float = 0.0,
) -> QueueEstimate:
    """The jobs running now finish (``running_left_s``, their time left together) and the
    jobs ahead run, ``workers`` at a time and each for the median time; then this one runs
    for ``run_s`` (the median, without it)."""
    workers = max(1, workers)
    if median_run_s is None:
        return QueueEstimate(position, workers, None, None, None, None, same_tier_ahead)
    own = median_run_s if run_s is None else run_s
    start = (running_left_s + position * median_run_s) / workers
    return QueueEstimate(position, workers, median_run_s, start, start + own, own, same_tier_ahead)


def _workload_types(job_type: JobType) -> list[str]:
    workload = workload_of(job_type)
    return sorted(t.value for t, w in WORKLOADS.items() if w == workload)


async def estimate_queue(
    session: AsyncSession,
    settings: ReadSettings,
    *,
    job_id: str,
    job_type: JobType,
    tier: str,
    queued_at: datetime,
    job_input: dict[str, Any] | None = None,
    media: dict[str, Any] | None = None,
) -> QueueEstimate:
    types = _workload_types(job_type)
    same_tier = await session.scalar(
        _POSITION,
        {
            "queued": JobStatus.QUEUED.value,
            "tier": tier,
            "types": types,
            "queued_at": queued_at,
            "job_id": job_id,
        },
    )
    queued = await session.execute(
        _QUEUED_BY_TIER, {"queued": JobStatus.QUEUED.value, "types": types}
    )
    by_tier = {str(row_tier): int(count) for row_tier, count in queued.all()}
    recent = (
        await session.execute(
            _RECENT_RUNS,
            {
                "type": job_type.value,
                "completed": JobStatus.COMPLETED.value,
                "runs": settings.eta_runs,
            },
        )
    ).all()
    workers = await session.scalar(
        _WORKERS, {"types": types, "window_s": float(settings.eta_worker_window_s)}
    )
    ahead_in_tier = int(same_tier or 0)
    position = starts_ahead(tier, ahead_in_tier, by_tier)
    if not recent:
        return estimate(position, median_run_s=None, workers=int(workers or 0))
    median_s = statistics.median(int(run_ms) for run_ms, _, _ in recent) / 1000
    running = await session.execute(_RUNNING, {"running": JobStatus.RUNNING.value, "types": types})
    # A running job has about the median time left but what it has run already.
    left = sum(max(0.0, median_s - float(ran or 0)) for (ran,) in running.all())
    unit_ms = median_unit_ms(
        (int(run_ms), work_of(job_type, run_input or {}, run_media))
        for run_ms, run_input, run_media in recent
    )
    own_s = None
    if unit_ms is not None and job_input is not None:
        own_s = unit_ms * work_of(job_type, job_input, media) / 1000
    return estimate(
        position,
        median_run_s=median_s,
        workers=int(workers or 0),
        run_s=own_s,
        same_tier_ahead=ahead_in_tier,
        running_left_s=left,
    )
