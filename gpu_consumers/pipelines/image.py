"""Image generation (text to image) and image editing (image plus text to image).

The model directory's own ``model_index.json`` picks the family: a Stable Diffusion 1.x/2.x
directory runs on ``StableDiffusionPipeline`` (generation) and
``StableDiffusionInpaintPipeline`` (editing), an SDXL one on their ``StableDiffusionXL``
counterparts. An edit always runs the inpainting pipeline: with a mask it repaints where
the mask is white, and without one the mask is the whole image, which with a
``strength`` below 1 is the image-to-image edit. Dedicated inpainting checkpoints (nine
input channels) and ordinary ones both load.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import torch
from PIL import Image, ImageOps

from contracts import JobType
from contracts.inputs import ImageEditInput, ImageGenerateInput
from gpu_consumers import blurhash
from gpu_consumers.media import png_bytes
from gpu_consumers.pipelines._diffusion import (
    DiffusionBacked,
    DiffusionModel,
    class_for,
    latent_preview,
    preview_step,
    step_callback,
)
from gpu_consumers.pipelines._torch import device_errors
from gpu_consumers.pipelines.base import (
    Artifact,
    PermanentError,
    PipelineResult,
    RunContext,
)

if TYPE_CHECKING:
    from gpu_consumers.pipelines._safety import SafetyFilter

__all__ = ["EDIT_CLASSES", "GENERATE_CLASSES", "ImageEditPipeline", "ImageGeneratePipeline"]

_SD: Final = (
    "StableDiffusionPipeline",
    "StableDiffusionImg2ImgPipeline",
    "StableDiffusionInpaintPipeline",
)
_SDXL: Final = (
    "StableDiffusionXLPipeline",
    "StableDiffusionXLImg2ImgPipeline",
    "StableDiffusionXLInpaintPipeline",
)
GENERATE_CLASSES: Final = {
    **dict.fromkeys(_SD, "StableDiffusionPipeline"),
    **dict.fromkeys(_SDXL, "StableDiffusionXLPipeline"),
}
"""The model directory's pipeline class -> the class that runs ``image.generate`` on it."""
EDIT_CLASSES: Final = {
    **dict.fromkeys(_SD, "StableDiffusionInpaintPipeline"),
    **dict.fromkeys(_SDXL, "StableDiffusionXLInpaintPipeline"),
}
"""The model directory's pipeline class -> the class that runs ``image.edit`` on it."""

DEFAULT_GUIDANCE: Final = 7.5
DEFAULT_EDIT_STRENGTH: Final = 0.75
DEFAULT_EDIT_STEPS: Final = 30
_MIN_SIDE: Final = 64


class _Safety:
    """The safety checker of a deployment that wants one, loaded with its pipeline."""

    def __init__(self, model_dir: str) -> None:
        self._model_dir = model_dir
        self._filter: SafetyFilter | None = None

    def load(self, device: str) -> None:
        from gpu_consumers.device import dtype_for
        from gpu_consumers.pipelines._safety import SafetyFilter

        self._filter = SafetyFilter.load(self._model_dir, device, dtype_for(device))

    def unload(self) -> None:
        self._filter = None

    @property
    def memory_bytes(self) -> int:
        return 0 if self._filter is None else self._filter.memory_bytes

    def require_clean(self, images: list[Image.Image]) -> None:
        if self._filter is None:
            raise RuntimeError("the safety checker is not loaded")
        self._filter.require_clean(images)


class _Checked(DiffusionBacked):
    """A diffusion pipeline whose results pass the safety checker, where one is wanted."""

    _safety: _Safety | None

    @property
    def memory_bytes(self) -> int:
        return self._model.memory_bytes + (0 if self._safety is None else self._safety.memory_bytes)

    def load(self, device: str) -> None:
        self._model.load(device)
        if self._safety is not None:
            self._safety.load(device)

    def unload(self) -> None:
        if self._safety is not None:
            self._safety.unload()
        self._model.unload()

    def _screened(self, images: list[Image.Image]) -> None:
        if self._safety is not None:
            self._safety.require_clean(images)


class ImageGeneratePipeline(_Checked):
    """Text to image with a Stable Diffusion 1.x/2.x or SDXL model directory."""

    job_type = JobType.IMAGE_GENERATE

    def __init__(
        self, *, model_dir: str, guidance: float = DEFAULT_GUIDANCE, safety_checker: bool = False
    ) -> None:
        self._model = DiffusionModel[Any](
            lambda found: class_for(found, GENERATE_CLASSES, self.job_type.value), model_dir
        )
        self._guidance = guidance
        self._safety = _Safety(model_dir) if safety_checker else None

    def run(self, ctx: RunContext) -> PipelineResult:
        job = ctx.input
        if not isinstance(job, ImageGenerateInput):
            raise PermanentError(f"{self.job_type} cannot run a {type(job).__name__}")
        pipe: Any = self._model.pipe
        ctx.check()
        with device_errors(), torch.inference_mode():
            result = pipe(
                prompt=job.prompt,
                negative_prompt=job.negative_prompt,
                width=job.width,
                height=job.height,
                num_inference_steps=job.steps,
                guidance_scale=self._guidance if job.guidance is None else job.guidance,
                generator=_generator(job.seed),
                output_type="pil",
                callback_on_step_end=step_callback(ctx, _ImageSteps(ctx)),
            )
        self._screened(result.images[:1])
        return _image_result(result.images[0])

    def run_batch(self, contexts: list[RunContext]) -> list[PipelineResult]:
        """Jobs that share size, steps and guidance, denoised together in one batch.

        Each job keeps its own prompt, negative prompt and seed (one generator each), its
        own progress and its own preview. Any job's ``check`` stopping stops the batch: the
        caller then runs the jobs one by one, where each meets its own end.
        """
        jobs = [ctx.input for ctx in contexts]
        if not all(isinstance(job, ImageGenerateInput) for job in jobs):
            raise PermanentError(f"{self.job_type} batches only take image.generate inputs")
        inputs = [job for job in jobs if isinstance(job, ImageGenerateInput)]
        first = inputs[0]
        shared = {(j.width, j.height, j.steps, j.guidance) for j in inputs}
        if len(shared) != 1:
            raise PermanentError("a batch needs one size, step count and guidance")
        pipe: Any = self._model.pipe
        for ctx in contexts:
            ctx.check()
        negatives = [job.negative_prompt or "" for job in inputs]
        with device_errors(), torch.inference_mode():
            result = pipe(
                prompt=[job.prompt for job in inputs],
                negative_prompt=negatives if any(negatives) else None,
                width=first.width,
                height=first.height,
                num_inference_steps=first.steps,
                guidance_scale=self._guidance if first.guidance is None else first.guidance,
                generator=[_batch_generator(job.seed) for job in inputs],
                output_type="pil",
                callback_on_step_end=_batch_callback(contexts),
            )
        # A flagged image stops the batch; run alone, only its own job fails.
        self._screened(result.images)
        return [_image_result(image) for image in result.images]


class ImageEditPipeline(_Checked):
    """Inpainting with a Stable Diffusion 1.x/2.x or SDXL model directory.

    The upload is scaled to fit ``max_side`` (in multiples of 8, as the latents require);
    the mask (white: repaint) is scaled to the same size. Without a mask the whole image
    is repainted, as far as ``strength`` goes.
    """

    job_type = JobType.IMAGE_EDIT

    def __init__(
        self,
        *,
        model_dir: str,
        guidance: float = DEFAULT_GUIDANCE,
        max_side: int = 1024,
        safety_checker: bool = False,
    ) -> None:
        self._model = DiffusionModel[Any](
            lambda found: class_for(found, EDIT_CLASSES, self.job_type.value), model_dir
        )
        self._guidance = guidance
        self._max_side = max_side
        self._safety = _Safety(model_dir) if safety_checker else None

    def run(self, ctx: RunContext) -> PipelineResult:
        job = ctx.input
        if not isinstance(job, ImageEditInput):
            raise PermanentError(f"{self.job_type} cannot run a {type(job).__name__}")
        pipe: Any = self._model.pipe
        source = _fit(_read_image(ctx, job.upload_id), self._max_side)
        if job.mask_upload_id is not None:
            mask = _read_image(ctx, job.mask_upload_id).convert("L").resize(source.size)
        else:
            mask = Image.new("L", source.size, 255)
        strength = DEFAULT_EDIT_STRENGTH if job.strength is None else job.strength
        steps = DEFAULT_EDIT_STEPS if job.steps is None else job.steps
        ctx.check()
        if int(steps * strength) < 1:
            # Too little strength for a single denoising step: the edit is the original.
            ctx.progress(1, 1, None)
            return _image_result(source)
        with device_errors(), torch.inference_mode():
            result = pipe(
                prompt=job.prompt,
                image=source,
                mask_image=mask,
                width=source.width,
                height=source.height,
                strength=strength,
                num_inference_steps=steps,
                guidance_scale=self._guidance,
                generator=_generator(job.seed),
                output_type="pil",
                callback_on_step_end=step_callback(ctx, _ImageSteps(ctx)),
            )
        edited: Image.Image = result.images[0]
        if edited.size != source.size:
            edited = edited.resize(source.size, Image.Resampling.LANCZOS)
        self._screened([edited])
        return _image_result(edited)


class _ImageSteps:
    """Progress at every step and one latent preview a quarter of the way in."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx

    def __call__(self, step: int, total: int, latents: torch.Tensor) -> None:
        self._ctx.progress(step, total, None)
        if step == preview_step(total):
            preview = latent_preview(latents, step)
            if preview is not None:
                self._ctx.preview(preview)


def _batch_callback(contexts: list[RunContext]) -> Any:
    steps = [_ImageSteps(ctx) for ctx in contexts]

    def callback(pipe: Any, index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        del timestep
        for ctx in contexts:
            ctx.check()
        latents = tensors["latents"]
        for position, handler in enumerate(steps):
            handler(index + 1, int(pipe.num_timesteps), latents[position : position + 1])
        return tensors

    return callback


def _batch_generator(seed: int | None) -> torch.Generator:
    # A batch needs one generator per image; an unseeded job gets a fresh random seed.
    generator = torch.Generator(device="cpu")
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def _generator(seed: int | None) -> torch.Generator | None:
    # On the CPU, so that a seed gives the same noise whatever device runs the model.
    return None if seed is None else torch.Generator(device="cpu").manual_seed(seed)


def _read_image(ctx: RunContext, upload_id: str) -> Image.Image:
    path: Path | None = ctx.input_files.get(upload_id)
    if path is None:
        raise PermanentError(f"upload {upload_id} was not provided to the job")
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise PermanentError(f"upload {upload_id} is not a readable image: {error}") from error
    return image.convert("RGB")


def _fit(image: Image.Image, max_side: int) -> Image.Image:
    """``image`` within ``max_side``, each side a multiple of 8 and at least 64."""
    ratio = min(1.0, max_side / max(image.size))
    width, height = (
        max(_MIN_SIDE, int(side * ratio) // 8 * 8) for side in (image.width, image.height)
    )
    if (width, height) == image.size:
        return image
    return image.resize((width, height), Image.Resampling.LANCZOS)


def _image_result(image: Image.Image) -> PipelineResult:
    artifact = Artifact(
        name="image.png",
        data=png_bytes(image),
        content_type="image/png",
        blurhash=blurhash.encode(image),
        width=image.width,
        height=image.height,
    )
    return PipelineResult(outputs=(artifact,), usage_units=1)
