"""Text to video with an image diffusion model: one denoised frame per latent on a noise walk.

Each frame starts from noise on a smooth path between seeded keyframe noises (spherical
interpolation, one keyframe per ``keyframe_s`` seconds), and every frame shares the prompt,
so neighbouring frames are close and the video drifts instead of flickering. Frames are
generated in small batches and encoded as they arrive.
"""

from __future__ import annotations

import math
import secrets
import tempfile
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import torch
from av.video.frame import VideoFrame
from PIL import Image

from contracts import JobType
from contracts.inputs import VideoGenerateInput
from gpu_consumers import blurhash
from gpu_consumers.media import Mp4Output
from gpu_consumers.pipelines._diffusion import DiffusionBacked, DiffusionModel, step_callback
from gpu_consumers.pipelines._preview import image_preview
from gpu_consumers.pipelines._torch import device_errors
from gpu_consumers.pipelines.base import (
    Artifact,
    PermanentError,
    PipelineResult,
    RunContext,
)

if TYPE_CHECKING:
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
        StableDiffusionPipeline,
    )

__all__ = ["VideoGeneratePipeline"]

DEFAULT_FPS: Final = 8
_SLERP_PARALLEL: Final = 0.9995
"""Above this cosine two noises are nearly parallel and a straight line is as good."""


class VideoGeneratePipeline(DiffusionBacked):
    """``ceil(duration_s * fps)`` frames from a Stable Diffusion model directory, as H.264 MP4."""

    job_type = JobType.VIDEO_GENERATE

    def __init__(
        self,
        *,
        model_dir: str,
        steps: int = 20,
        batch_size: int = 4,
        guidance: float = 7.5,
        default_fps: int = DEFAULT_FPS,
        keyframe_s: float = 1.0,
        crf: int = 20,
    ) -> None:
        from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
            StableDiffusionPipeline,
        )

        if steps < 1 or batch_size < 1 or default_fps < 1 or keyframe_s <= 0:
            raise ValueError("steps, batch_size, default_fps and keyframe_s must be positive")
        self._model = DiffusionModel[StableDiffusionPipeline](StableDiffusionPipeline, model_dir)
        self._steps = steps
        self._batch_size = batch_size
        self._guidance = guidance
        self._default_fps = default_fps
        self._keyframe_s = keyframe_s
        self._crf = crf

    def run(self, ctx: RunContext) -> PipelineResult:
        job = ctx.input
        if not isinstance(job, VideoGenerateInput):
            raise PermanentError(f"{self.job_type} cannot run a {type(job).__name__}")
        pipe: StableDiffusionPipeline = self._model.pipe
        fps = job.fps or self._default_fps
        frame_count = math.ceil(job.duration_s * fps)
        seed = secrets.randbelow(2**32) if job.seed is None else job.seed
        noise = _NoiseWalk(
            shape=(
                pipe.unet.config.in_channels,
                job.height // pipe.vae_scale_factor,
                job.width // pipe.vae_scale_factor,
            ),
            seed=seed,
            frames_per_key=max(1, round(self._keyframe_s * fps)),
        )
        ctx.check()
        first_frame: Image.Image | None = None
        with ExitStack() as stack:
            work_dir = ctx.work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
            path = work_dir / "video.mp4"
            with (
                device_errors(),
                torch.inference_mode(),
                Mp4Output(path, width=job.width, height=job.height, rate=fps, crf=self._crf) as mp4,
            ):
                mp4.add_silent_audio()
                embeds, negative_embeds = pipe.encode_prompt(
                    job.prompt,
                    self._model.device,
                    num_images_per_prompt=1,
                    do_classifier_free_guidance=self._guidance > 1,
                )
                for start in range(0, frame_count, self._batch_size):
                    ctx.check()
                    stop = min(frame_count, start + self._batch_size)
                    latents = torch.stack([noise.at(index) for index in range(start, stop)])
                    result = pipe(
                        prompt_embeds=embeds,
                        negative_prompt_embeds=negative_embeds,
                        num_images_per_prompt=stop - start,
                        latents=latents.to(self._model.device, embeds.dtype),
                        width=job.width,
                        height=job.height,
                        num_inference_steps=self._steps,
                        guidance_scale=self._guidance,
                        output_type="np",
                        callback_on_step_end=step_callback(ctx, None),
                    )
                    pixels = (np.clip(result.images, 0.0, 1.0) * 255).round().astype(np.uint8)
                    for offset, rgb in enumerate(pixels):
                        index = start + offset
                        frame = VideoFrame.from_ndarray(rgb, format="rgb24")
                        frame.pts = index
                        mp4.write_frame(frame)
                        mp4.write_silence_until((index + 1) / fps)
                        if first_frame is None:
                            first_frame = Image.fromarray(rgb)
                            ctx.preview(image_preview(first_frame, 1))
                        ctx.progress(index + 1, frame_count, None)
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


class _NoiseWalk:
    """Unit Gaussian noise for frame ``i``: a slerp between the keyframes either side of it.

    Keyframes are drawn from their own seeded generators, so any frame can be computed on
    its own and a long video keeps only two of them in memory.
    """

    def __init__(self, *, shape: tuple[int, int, int], seed: int, frames_per_key: int) -> None:
        self._shape = shape
        self._seed = seed
        self._frames_per_key = frames_per_key
        self._keys: dict[int, torch.Tensor] = {}

    def at(self, index: int) -> torch.Tensor:
        key, offset = divmod(index, self._frames_per_key)
        start = self._key(key)
        if offset == 0:
            return start
        return _slerp(start, self._key(key + 1), offset / self._frames_per_key)

    def _key(self, key: int) -> torch.Tensor:
        if key not in self._keys:
            for stale in [k for k in self._keys if k < key - 1]:
                del self._keys[stale]
            generator = torch.Generator(device="cpu").manual_seed((self._seed + key) % 2**63)
            self._keys[key] = torch.randn(self._shape, generator=generator)
        return self._keys[key]


def _slerp(start: torch.Tensor, end: torch.Tensor, fraction: float) -> torch.Tensor:
    # A straight line between two Gaussian samples passes through lower-variance noise than
    # the model was trained on; the great circle keeps the norm.
    cosine = torch.sum(start * end) / (torch.linalg.norm(start) * torch.linalg.norm(end))
    if abs(float(cosine)) > _SLERP_PARALLEL:
        return (1 - fraction) * start + fraction * end
    angle = torch.arccos(cosine)
    return (
        torch.sin((1 - fraction) * angle) * start + torch.sin(fraction * angle) * end
    ) / torch.sin(angle)
