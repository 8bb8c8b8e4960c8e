"""The Stable Diffusion safety checker, run on finished images where a deployment wants it.

diffusers' pipelines answer a flagged image with a black one; here a flagged image fails
its job with ``content_filtered`` instead, so nobody is sent (or charged for) a black
square. The checker and its image processor come from the model directory's
``safety_checker`` and ``feature_extractor`` folders, as Stable Diffusion 1.x/2.x
checkpoints ship them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from gpu_consumers.pipelines._torch import is_local, loading_errors, module_bytes
from gpu_consumers.pipelines.base import ContentFilteredError

if TYPE_CHECKING:
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

__all__ = ["SafetyFilter"]


class SafetyFilter:
    def __init__(self, checker: StableDiffusionSafetyChecker, processor: Any, device: str) -> None:
        self._checker = checker
        self._processor = processor
        self._device = device

    @classmethod
    def load(cls, model_dir: str, device: str, dtype: torch.dtype) -> SafetyFilter:
        from diffusers.pipelines.stable_diffusion.safety_checker import (
            StableDiffusionSafetyChecker,
        )
        from transformers import CLIPImageProcessor

        local = is_local(model_dir)
        with loading_errors(f"{model_dir} (its safety checker, which this deployment requires)"):
            checker = StableDiffusionSafetyChecker.from_pretrained(
                model_dir, subfolder="safety_checker", torch_dtype=dtype, local_files_only=local
            )
            processor = CLIPImageProcessor.from_pretrained(
                model_dir, subfolder="feature_extractor", local_files_only=local
            )
            torch.nn.Module.to(checker, device)
        return cls(checker, processor, device)

    @property
    def memory_bytes(self) -> int:
        return module_bytes([self._checker])

    def flagged(self, images: list[Image.Image]) -> list[bool]:
        """Whether each image is one the checker withholds."""
        features = self._processor(images, return_tensors="pt").pixel_values
        pixels = np.stack(
            [np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0 for image in images]
        )
        dtype = next(self._checker.parameters()).dtype
        with torch.inference_mode():
            _, nsfw = self._checker(clip_input=features.to(self._device, dtype), images=pixels)
        return [bool(flag) for flag in nsfw]

    def require_clean(self, images: list[Image.Image]) -> None:
        if any(self.flagged(images)):
            raise ContentFilteredError("the result was withheld by the content safety checker")
