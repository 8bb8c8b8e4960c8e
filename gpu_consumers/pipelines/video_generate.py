"""Text to video with a diffusers text-to-video pipeline: AnimateDiff by default.

The model directory picks the class by its ``model_index.json``: a saved
``AnimateDiffPipeline`` (or ``AnimateDiffSDXLPipeline``) loads as it is; a plain Stable
Diffusion (or SDXL) base loads as AnimateDiff with the ``motion_adapter`` the deployment
names (a directory or hub id of a ``MotionAdapter``).

A video longer than one ``segment_frames`` context (what the motion module was trained on,
16 frames for AnimateDiff) is generated a segment at a time, each from its own seed, and
every segment is encoded as it arrives: memory holds one segment, whatever the duration.
Progress is reported at every denoising step of every segment; the first frame is the
preview. The MP4 has exactly ``ceil(duration_s * fps)`` frames at ``fps``.
"""

from __future__ import annotations

import math
import secrets
import tempfile
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from av.video.frame import VideoFrame
from PIL import Image

from contracts import JobType
from contracts.errors import JobErrorCode
from contracts.inputs import VideoGenerateInput
from gpu_consumers import blurhash
from gpu_consumers.media import Mp4Output
from gpu_consumers.pipelines._diffusion import (
    DiffusionBacked,
    DiffusionModel,
    class_for,
    model_class_name,
    step_callback,
)
from gpu_consumers.pipelines._preview import image_preview
from gpu_consumers.pipelines._torch import device_errors, is_local, loading_errors
from gpu_consumers.pipelines.base import (
    Artifact,
    LimitExceededError,
    PermanentError,
    PipelineResult,
    RunContext,
)

__all__ = ["VIDEO_CLASSES", "VideoGeneratePipeline"]

DEFAULT_FPS: Final = 8
DEFAULT_SEGMENT_FRAMES: Final = 16
VIDEO_CLASSES: Final = {
    "AnimateDiffPipeline": "AnimateDiffPipeline",
    "AnimateDiffSDXLPipeline": "AnimateDiffSDXLPipeline",
}
"""A saved text-to-video pipeline class -> the class that loads it."""
BASE_CLASSES: Final = {
    "StableDiffusionPipeline": "AnimateDiffPipeline",
    "StableDiffusionXLPipeline": "AnimateDiffSDXLPipeline",
}
"""An image base, given a motion adapter -> the AnimateDiff class that runs it."""


class VideoGeneratePipeline(DiffusionBacked):
    """``ceil(duration_s * fps)`` frames from an AnimateDiff model directory, as H.264 MP4."""

    job_type = JobType.VIDEO_GENERATE

    def __init__(
        self,
        *,
        model_dir: str,
        motion_adapter: str | None = None,
        steps: int = 20,
        guidance: float = 7.5,
        default_fps: int = DEFAULT_FPS,
        segment_frames: int = DEFAULT_SEGMENT_FRAMES,
        crf: int = 20,
    ) -> None:
        if steps < 1 or default_fps < 1 or segment_frames < 1:
            raise ValueError("steps, default_fps and segment_frames must be positive")
        self._motion_adapter = motion_adapter
        self._model = DiffusionModel[Any](self._pipeline_class, model_dir, extra=self._adapter)
        self._steps = steps
        self._guidance = guidance
        self._default_fps = default_fps
        self._segment_frames = segment_frames
        self._crf = crf

    def _pipeline_class(self, model_dir: str) -> type[Any]:
        if self._motion_adapter is not None and model_class_name(model_dir) in BASE_CLASSES:
            return class_for(model_dir, BASE_CLASSES, self.job_type.value)
        if model_class_name(model_dir) in BASE_CLASSES:
            raise PermanentError(
                f"{model_dir} is an image model; video.generate needs a text-to-video "
                "pipeline directory, or a motion adapter (GENSTREAM_WORKER_MOTION_ADAPTER)"
            )
        return class_for(model_dir, VIDEO_CLASSES, self.job_type.value)

    def _adapter(self, dtype: torch.dtype) -> dict[str, Any]:
        if self._motion_adapter is None:
            return {}
        from diffusers.models.unets.unet_motion_model import MotionAdapter

        with loading_errors(self._motion_adapter):
            adapter = MotionAdapter.from_pretrained(
                self._motion_adapter,
                torch_dtype=dtype,
                local_files_only=is_local(self._motion_adapter),
            )
        return {"motion_adapter": adapter}

    def run(self, ctx: RunContext) -> PipelineResult:
        job = ctx.input
        if not isinstance(job, VideoGenerateInput):
            raise PermanentError(f"{self.job_type} cannot run a {type(job).__name__}")
        pipe: Any = self._model.pipe
        fps = job.fps or self._default_fps
        frame_count = math.ceil(job.duration_s * fps)
        segments = math.ceil(frame_count / self._segment_frames)
        seed = secrets.randbelow(2**32) if job.seed is None else job.seed
        ctx.check()
        first_frame: Image.Image | None = None
        written = 0
        with ExitStack() as stack:
            work_dir = ctx.work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
            path = work_dir / "video.mp4"
            with (
                device_errors(),
                torch.inference_mode(),
                Mp4Output(path, width=job.width, height=job.height, rate=fps, crf=self._crf) as mp4,
            ):
                mp4.add_silent_audio()
                for segment in range(segments):
                    ctx.check()
                    wanted = min(self._segment_frames, frame_count - written)
                    result = pipe(
                        prompt=job.prompt,
                        num_frames=wanted,
                        width=job.width,
                        height=job.height,
                        num_inference_steps=self._steps,
                        guidance_scale=self._guidance,
                        generator=torch.Generator(device="cpu").manual_seed(
                            (seed + segment) % 2**32
                        ),
                        output_type="np",
                        callback_on_step_end=step_callback(
                            ctx, _SegmentSteps(ctx, segment, segments)
                        ),
                    )
                    frames = np.asarray(result.frames[0])
                    if frames.shape[0] != wanted:
                        raise LimitExceededError(
                            JobErrorCode.OUTPUT_LIMIT,
                            f"the model made {frames.shape[0]} frames where {wanted} were asked",
                        )
                    pixels = (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)
                    for rgb in pixels:
                        frame = VideoFrame.from_ndarray(rgb, format="rgb24")
                        frame.pts = written
                        mp4.write_frame(frame)
                        written += 1
                        mp4.write_silence_until(written / fps)
                        if first_frame is None:
                            first_frame = Image.fromarray(rgb)
                            ctx.preview(image_preview(first_frame, 1))
                    del result, frames, pixels
            data = path.read_bytes()
        assert first_frame is not None  # duration_s >= 1 and fps >= 1: at least one frame
        video = Artifact(
            name="video.mp4",
            data=data,
            content_type="video/mp4",
            blurhash=blurhash.encode(first_frame),
            duration_s=float(Fraction(frame_count, fps)),
            width=job.width,
            height=job.height,
        )
        return PipelineResult(outputs=(video,), usage_units=math.ceil(job.duration_s))


class _SegmentSteps:
    """Progress over every segment's denoising steps, reported from one segment's steps."""

    def __init__(self, ctx: RunContext, segment: int, segments: int) -> None:
        self._ctx, self._segment, self._segments = ctx, segment, segments

    def __call__(self, step: int, total: int, latents: torch.Tensor) -> None:
        del latents
        self._ctx.progress(self._segment * total + step, self._segments * total, None)
