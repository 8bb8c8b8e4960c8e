"""The pipelines that run jobs, one class per job type, built by ``build_pipeline``.

Model-backed pipelines import torch, diffusers and transformers only when they are built,
so this package (and the synthetic pipeline) works without the ``gpu`` extra installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contracts import JobType
from gpu_consumers.pipelines.base import (
    Artifact,
    ContentFilteredError,
    JobStopped,
    LimitExceededError,
    PermanentError,
    Pipeline,
    PipelineResult,
    Preview,
    RunContext,
    TransientError,
)

__all__ = [
    "Artifact",
    "ContentFilteredError",
    "JobStopped",
    "LimitExceededError",
    "PermanentError",
    "Pipeline",
    "PipelineBuilder",
    "PipelineResult",
    "Preview",
    "RunContext",
    "TransientError",
    "build_pipeline",
]


def build_pipeline(job_type: JobType, model_dir: str | None, **options: Any) -> Pipeline:
    """A new, unloaded pipeline for ``job_type``; call ``load(device)`` before ``run``.

    ``model_dir`` is a local model directory, or a hub id where the deployment can reach the
    hub; the synthetic pipeline takes none. ``options`` go to the pipeline's constructor
    (``steps`` and ``batch_size`` for video generation, ``batch_size`` and ``crf`` for video
    enhancement, ``guidance``, ...); an unknown one is a ``TypeError``.
    """
    kind = JobType(job_type)
    if kind is JobType.SYNTHETIC:
        from gpu_consumers.pipelines.synthetic import SyntheticPipeline

        return SyntheticPipeline(**options)
    if not model_dir:
        raise ValueError(f"{kind} needs a model directory or hub id")
    if kind is JobType.IMAGE_GENERATE:
        from gpu_consumers.pipelines.image import ImageGeneratePipeline

        return ImageGeneratePipeline(model_dir=model_dir, **options)
    if kind is JobType.IMAGE_EDIT:
        from gpu_consumers.pipelines.image import ImageEditPipeline

        return ImageEditPipeline(model_dir=model_dir, **options)
    if kind is JobType.VIDEO_GENERATE:
        from gpu_consumers.pipelines.video_generate import VideoGeneratePipeline

        return VideoGeneratePipeline(model_dir=model_dir, **options)
    if kind is JobType.VIDEO_ENHANCE:
        from gpu_consumers.pipelines.video_enhance import VideoEnhancePipeline

        return VideoEnhancePipeline(model_dir=model_dir, **options)
    if kind is JobType.AUDIO_SPEECH:
        from gpu_consumers.pipelines.speech import SpeechPipeline

        return SpeechPipeline(model_dir=model_dir, **options)
    raise ValueError(f"no pipeline for job type {kind}")


@dataclass(frozen=True, slots=True)
class PipelineBuilder:
    """``build_pipeline`` with the deployment's options per job type, as one value that can
    be sent to the process that builds the pipelines."""

    options: dict[JobType, dict[str, Any]] = field(default_factory=dict)

    def __call__(self, job_type: JobType, model_dir: str | None) -> Pipeline:
        return build_pipeline(job_type, model_dir, **self.options.get(JobType(job_type), {}))
