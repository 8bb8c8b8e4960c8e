"""Previews: a small image with its BlurHash, sent while a job runs."""

from __future__ import annotations

from typing import Final, Literal

from PIL import Image

from gpu_consumers import blurhash
from gpu_consumers.media import jpeg_bytes, png_bytes
from gpu_consumers.pipelines.base import Preview

__all__ = ["PREVIEW_SIDE", "image_preview"]

PREVIEW_SIDE: Final = 512
"""Longest side of a preview: enough for a progress card, small enough to send often."""


def image_preview(
    image: Image.Image, step: int, *, kind: Literal["jpeg", "png"] = "jpeg"
) -> Preview:
    """``image`` within ``PREVIEW_SIDE`` pixels as a preview of ``step``."""
    if max(image.size) > PREVIEW_SIDE:
        image = image.copy()
        image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.BILINEAR)
    if kind == "png":
        data, content_type = png_bytes(image), "image/png"
    else:
        data, content_type = jpeg_bytes(image), "image/jpeg"
    return Preview(step=step, data=data, content_type=content_type, blurhash=blurhash.encode(image))
