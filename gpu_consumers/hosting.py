"""Where a worker's pipelines run, from its settings: a watched child process, or inline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from contracts import JobType, workload_of
from gpu_consumers.isolation import ChildSpec, JobLimits, PipelineHost
from gpu_consumers.model_cache import ModelCache
from gpu_consumers.pipelines import Pipeline, PipelineBuilder
from gpu_consumers.settings import WorkerSettings

__all__ = ["Pipelines", "pipeline_options", "worker_pipelines"]

_MB: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Pipelines:
    provider: Callable[[JobType], Pipeline]
    """What ``JobRunner`` calls for the pipeline of a job type."""
    device: str
    close: Callable[[], None]


def pipeline_options(settings: WorkerSettings) -> dict[JobType, dict[str, Any]]:
    """The deployment's choices that pipelines take as constructor options."""
    safety = {"safety_checker": settings.worker_safety_checker}
    video: dict[str, Any] = {"steps": settings.worker_video_steps}
    if settings.worker_motion_adapter:
        video["motion_adapter"] = settings.worker_motion_adapter
    return {
        JobType.IMAGE_GENERATE: safety,
        JobType.IMAGE_EDIT: safety,
        JobType.VIDEO_GENERATE: video,
    }


def worker_pipelines(settings: WorkerSettings) -> Pipelines:
    """The worker's pipelines; in ``process`` isolation their process is started (and the
    device chosen there) before this returns, so the worker itself never imports torch."""
    models: dict[JobType, str | None] = {
        job_type: settings.worker_models.get(job_type) for job_type in JobType
    }
    builder = PipelineBuilder(pipeline_options(settings))
    budget = settings.worker_model_budget_mb * _MB
    if settings.worker_isolation == "inline":
        from gpu_consumers.device import choose_device

        device = choose_device(settings.worker_device)
        cache = ModelCache(budget, device, lambda key: builder(key[0], key[1]))
        return Pipelines(
            provider=lambda job_type: cache.get((job_type, models[job_type])),
            device=device,
            close=cache.clear,
        )
    address_space = settings.worker_job_address_space_mb
    limits = JobLimits(
        memory_bytes=None
        if settings.worker_job_memory_mb is None
        else settings.worker_job_memory_mb * _MB,
        address_space_bytes=None if address_space is None else address_space * _MB,
        stop_grace_s=settings.worker_stop_grace_s,
    )
    spec = ChildSpec(
        device=settings.worker_device,
        budget_bytes=budget,
        models=models,
        factory=builder,
        address_space_bytes=limits.address_space_bytes,
        preload=tuple(
            job_type
            for job_type in JobType
            if models[job_type] and workload_of(job_type) is settings.worker_workload
        ),
    )
    host = PipelineHost(spec, limits)
    device = host.start()
    return Pipelines(provider=host.pipeline, device=device, close=host.close)
