"""Loading and stepping Stable Diffusion pipelines: shared by image and video generation.

Every denoising step ends in a callback that calls ``ctx.check()`` (so a cancelled job stops
within one step) and hands the step and the current latents to the caller's step handler.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import torch
from PIL import Image

from gpu_consumers.device import dtype_for
from gpu_consumers.pipelines._preview import image_preview
from gpu_consumers.pipelines._torch import is_local, loading_errors, module_bytes, release_memory
from gpu_consumers.pipelines.base import PermanentError, Preview, RunContext

if TYPE_CHECKING:
    from diffusers.pipelines.pipeline_utils import DiffusionPipeline

__all__ = [
    "DiffusionBacked",
    "DiffusionModel",
    "StepHandler",
    "class_for",
    "latent_preview",
    "model_class_name",
    "preview_step",
    "step_callback",
]

StepHandler = Callable[[int, int, torch.Tensor], None]
"""``handler(step, total_steps, latents)`` after each denoising step; steps count from 1."""

PipelineT = TypeVar("PipelineT", bound="DiffusionPipeline")

StepCallback = Callable[[Any, int, Any, dict[str, Any]], dict[str, Any]]

_LATENT_TO_RGB: Final = (
    (0.298, 0.207, 0.208),
    (0.187, 0.286, 0.173),
    (-0.158, 0.189, 0.264),
    (-0.184, -0.271, -0.473),
)
"""A least-squares linear map from Stable Diffusion's four latent channels to RGB in [-1, 1]:
a blurry but recognisable image for the cost of a matrix product, with no VAE decode."""
_LATENT_FACTOR: Final = 8
"""Pixels per latent along each side in Stable Diffusion's autoencoder."""


def model_class_name(model_dir: str) -> str:
    """The pipeline class a diffusers model directory (or hub id) was saved from, as its
    ``model_index.json`` names it."""
    from diffusers.pipelines.pipeline_utils import DiffusionPipeline

    with loading_errors(model_dir):
        config = DiffusionPipeline.load_config(model_dir, local_files_only=is_local(model_dir))
    name = config.get("_class_name") if isinstance(config, Mapping) else None
    if not isinstance(name, str):
        raise PermanentError(f"{model_dir} has no model_index.json naming its pipeline class")
    return name


def class_for(model_dir: str, choices: Mapping[str, str], job: str) -> type[Any]:
    """The diffusers pipeline class that runs ``job`` on ``model_dir``: ``choices`` maps the
    directory's own pipeline class name to the one to load it with."""
    import diffusers

    saved = model_class_name(model_dir)
    wanted = choices.get(saved)
    if wanted is None:
        accepted = ", ".join(sorted(choices))
        raise PermanentError(f"{model_dir} is a {saved}; {job} takes one of: {accepted}")
    pipeline_class: type[Any] = getattr(diffusers, wanted)
    return pipeline_class


class DiffusionModel(Generic[PipelineT]):
    """A diffusers pipeline, loaded from ``model_dir`` on demand.

    ``pipeline_class`` is a class, or a function of the model directory that picks one
    (from its ``model_index.json``) when the model is loaded. ``extra`` gives further
    ``from_pretrained`` arguments (components loaded on their own) for the device's dtype.
    """

    def __init__(
        self,
        pipeline_class: type[PipelineT] | Callable[[str], type[PipelineT]],
        model_dir: str,
        *,
        extra: Callable[[torch.dtype], dict[str, Any]] | None = None,
    ) -> None:
        self._class = pipeline_class
        self._extra = extra
        self.model_dir = model_dir
        self._pipe: PipelineT | None = None
        self._device: str | None = None
        self._bytes = 0
        self.class_name = ""

    @property
    def pipe(self) -> PipelineT:
        if self._pipe is None:
            raise RuntimeError(f"the model at {self.model_dir} is not loaded")
        return self._pipe

    @property
    def device(self) -> str:
        if self._device is None:
            raise RuntimeError(f"the model at {self.model_dir} is not loaded")
        return self._device

    @property
    def memory_bytes(self) -> int:
        return self._bytes

    def load(self, device: str) -> None:
        if self._pipe is not None:
            self.unload()
        chosen: type[Any] = (
            self._class if isinstance(self._class, type) else self._class(self.model_dir)
        )
        dtype = dtype_for(device)
        options: dict[str, Any] = {} if self._extra is None else self._extra(dtype)
        if "safety_checker" in inspect.signature(chosen).parameters:
            # The safety checker, where a deployment wants it, runs on its own (_safety.py),
            # so that a flagged result is an error rather than a black image.
            options.update(safety_checker=None, requires_safety_checker=False)
        with loading_errors(self.model_dir):
            pipe = chosen.from_pretrained(
                self.model_dir,
                torch_dtype=dtype,
                local_files_only=is_local(self.model_dir),
                **options,
            )
            pipe = pipe.to(device)
        self.class_name = type(pipe).__name__
        pipe.set_progress_bar_config(disable=True)
        if device.startswith("cuda"):
            # Slower by a few percent, but the peak memory of attention and of decoding a
            # batch no longer grows with the image size times the batch.
            pipe.enable_attention_slicing()
            vae = getattr(pipe, "vae", None)
            if vae is not None and hasattr(vae, "enable_slicing"):
                vae.enable_slicing()
        modules = [part for part in pipe.components.values() if isinstance(part, torch.nn.Module)]
        self._bytes = module_bytes(modules)
        self._pipe, self._device = pipe, device

    def unload(self) -> None:
        device = self._device
        self._pipe, self._device, self._bytes = None, None, 0
        release_memory(device)


class DiffusionBacked:
    """The model lifecycle of a pipeline that runs one ``DiffusionModel``."""

    _model: DiffusionModel[Any]

    @property
    def memory_bytes(self) -> int:
        return self._model.memory_bytes

    @property
    def pipeline_class_name(self) -> str:
        """The diffusers class the loaded model runs on (empty until loaded)."""
        return self._model.class_name

    def load(self, device: str) -> None:
        self._model.load(device)

    def unload(self) -> None:
        self._model.unload()


def preview_step(total_steps: int) -> int:
    """The step whose latents become the preview: a quarter in, when shapes have formed."""
    return max(1, total_steps // 4)


def step_callback(ctx: RunContext, handler: StepHandler | None) -> StepCallback:
    """A ``callback_on_step_end`` that checks for cancellation and reports to ``handler``."""

    def callback(pipe: Any, index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        del timestep
        ctx.check()
        if handler is not None:
            handler(index + 1, int(pipe.num_timesteps), tensors["latents"])
        return tensors

    return callback


def latent_preview(latents: torch.Tensor, step: int) -> Preview | None:
    """A JPEG of the first image in ``latents`` through the linear latent-to-RGB map.

    ``None`` for latents that do not have Stable Diffusion's four channels.
    """
    if latents.ndim != 4 or latents.shape[1] != len(_LATENT_TO_RGB):
        return None
    weights = torch.tensor(_LATENT_TO_RGB, dtype=torch.float32)
    sample = latents[0].detach().to(device="cpu", dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", sample, weights)
    pixels = ((rgb + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8).numpy()
    small = Image.fromarray(pixels)
    image = small.resize(
        (small.width * _LATENT_FACTOR, small.height * _LATENT_FACTOR), Image.Resampling.BILINEAR
    )
    return image_preview(image, step)
