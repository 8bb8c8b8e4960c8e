"""A small ESPCN-style super-resolution network and its on-disk format.

Features are extracted at the input resolution and a sub-pixel convolution (pixel shuffle)
turns ``scale²`` channels into a ``scale``-times larger image, so almost all work happens on
the small image. With ``residual`` the network predicts only the detail missing from a
bicubic upscale, which trains faster and degrades gracefully to bicubic.

A model directory holds ``config.json`` (the fields of ``SuperResolutionConfig``) and
``model.safetensors``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "SuperResolutionConfig", "SuperResolutionNet"]

CONFIG_NAME: Final = "config.json"
WEIGHTS_NAME: Final = "model.safetensors"
_MODEL_TYPE: Final = "espcn"


@dataclass(frozen=True, slots=True)
class SuperResolutionConfig:
    scale: int = 2
    channels: int = 64
    """Feature channels of the first layer; the second has half as many."""
    image_channels: int = 3
    residual: bool = True

    def __post_init__(self) -> None:
        if self.scale < 2 or self.channels < 2 or self.image_channels < 1:
            raise ValueError(f"invalid super-resolution config: {self}")


class SuperResolutionNet(nn.Module):
    """Maps images in [0, 1], shaped (N, C, H, W), to (N, C, scale·H, scale·W)."""

    def __init__(self, config: SuperResolutionConfig) -> None:
        super().__init__()
        self.config = config
        hidden = max(1, config.channels // 2)
        self.features = nn.Sequential(
            nn.Conv2d(config.image_channels, config.channels, kernel_size=5, padding=2),
            nn.Tanh(),
            nn.Conv2d(config.channels, hidden, kernel_size=3, padding=1),
            nn.Tanh(),
            nn.Conv2d(hidden, config.image_channels * config.scale**2, kernel_size=3, padding=1),
        )
        self.shuffle = nn.PixelShuffle(config.scale)

    @property
    def scale(self) -> int:
        return self.config.scale

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        upscaled: torch.Tensor = self.shuffle(self.features(images))
        if self.config.residual:
            upscaled = upscaled + functional.interpolate(
                images, scale_factor=self.config.scale, mode="bicubic", align_corners=False
            )
        return upscaled.clamp(0.0, 1.0)

    def save_pretrained(self, directory: Path | str) -> None:
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        config = {"model_type": _MODEL_TYPE, **asdict(self.config)}
        (target / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        weights = {
            name: tensor.detach().contiguous().cpu() for name, tensor in self.state_dict().items()
        }
        save_file(weights, str(target / WEIGHTS_NAME), metadata={"format": "pt"})

    @classmethod
    def from_pretrained(cls, directory: Path | str) -> SuperResolutionNet:
        """Loads a model saved by ``save_pretrained``; raises ``ValueError`` on a foreign one."""
        source = Path(directory)
        raw = json.loads((source / CONFIG_NAME).read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or raw.pop("model_type", None) != _MODEL_TYPE:
            raise ValueError(f"{source / CONFIG_NAME} does not describe an {_MODEL_TYPE} model")
        try:
            config = SuperResolutionConfig(**raw)
        except TypeError as error:
            raise ValueError(f"{source / CONFIG_NAME}: {error}") from error
        model = cls(config)
        # strict: a weight file that does not match the config is a broken model, not a
        # partially random one.
        model.load_state_dict(load_file(str(source / WEIGHTS_NAME)), strict=True)
        return model.eval()
