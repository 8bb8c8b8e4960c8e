"""Where a queued job stands: its position in its tier's queue and an estimate of the wait.

Both come from the read model alone. The position counts the jobs of the same workload and
tier queued before this one that still wait; the estimate spreads the median of the job
type's recent run times over the workers recently seen serving the workload.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

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

_MEDIAN_RUN = text(
    """
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY run_ms) FROM (
        SELECT run_ms FROM jobs
        WHERE type = :type AND status = :completed AND run_ms IS NOT NULL
        ORDER BY finished_at DESC LIMIT :runs
    ) AS recent
    """
)

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


def estimate(position: int, *, median_run_s: float | None, workers: int) -> QueueEstimate:
    """The jobs ahead run ``workers`` at a time, then this one runs for a median time."""
    workers = max(1, workers)
    if median_run_s is None:
        return QueueEstimate(position, workers, None, None, None)
    start = position * median_run_s / workers
    return QueueEstimate(position, workers, median_run_s, start, start + median_run_s)


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
) -> QueueEstimate:
    types = _workload_types(job_type)
    position = await session.scalar(
        _POSITION,
        {
            "queued": JobStatus.QUEUED.value,
            "tier": tier,
            "types": types,
            "queued_at": queued_at,
            "job_id": job_id,
        },
    )
    median_ms = await session.scalar(
        _MEDIAN_RUN,
        {"type": job_type.value, "completed": JobStatus.COMPLETED.value, "runs": settings.eta_runs},
    )
    workers = await session.scalar(
        _WORKERS, {"types": types, "window_s": float(settings.eta_worker_window_s)}
    )
    median_s = None if median_ms is None else float(median_ms) / 1000
    return estimate(int(position or 0), median_run_s=median_s, workers=int(workers or 0))
