"""Bounds on a job's uploaded input, checked from its headers before anything is decoded.

The object a worker reads is the API's checked copy, with what the API measured as its
metadata. The worker still reads the file's own header and refuses it where it is larger
than measured, or larger than this worker accepts at all: a worker decodes nothing that
its job was not priced for, even if the store or the metadata were tampered with.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import av
from PIL import Image, UnidentifiedImageError

from contracts import MediaInfo
from gpu_consumers.pipelines.base import PermanentError

__all__ = ["InputBounds", "check_input"]

_DURATION_SLACK_S: Final = 0.5
"""Containers round their durations; more than this past the measurement is another file."""


@dataclass(frozen=True, slots=True)
class InputBounds:
    """What this worker accepts of any input, whatever the job was priced for."""

    max_pixels: int
    max_duration_s: float


def check_input(
    path: Path, measured: MediaInfo | None, bounds: InputBounds, *, upload_id: str
) -> None:
    """Raises ``PermanentError`` unless ``path`` is within ``measured`` and ``bounds``."""
    if measured is None:
        raise PermanentError(f"upload {upload_id} carries no measurements; it was not checked")
    if path.stat().st_size != measured.size:
        raise PermanentError(f"upload {upload_id} is not the file that was checked")
    if measured.content_type.startswith("image/"):
        _check_image(path, measured, bounds, upload_id)
    else:
        _check_video(path, measured, bounds, upload_id)


def _check_image(path: Path, measured: MediaInfo, bounds: InputBounds, upload_id: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise PermanentError(f"upload {upload_id} has too many pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise PermanentError(f"upload {upload_id} is not a readable image") from None
    _check_frame(width, height, measured, bounds, upload_id)


def _check_video(path: Path, measured: MediaInfo, bounds: InputBounds, upload_id: str) -> None:
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.video:
                raise PermanentError(f"upload {upload_id} has no video stream")
            context = container.streams.video[0].codec_context
            width, height = context.width, context.height
            declared_s = container.duration / av.time_base if container.duration else 0.0
    except av.FFmpegError:
        raise PermanentError(f"upload {upload_id} is not a readable video") from None
    _check_frame(width, height, measured, bounds, upload_id)
    paid_s = measured.duration_s if measured.duration_s is not None else 0.0
    if declared_s > min(paid_s, bounds.max_duration_s) + _DURATION_SLACK_S:
        raise PermanentError(
            f"upload {upload_id} plays {declared_s:.2f} s; the job was checked for {paid_s:.2f} s"
        )


def _check_frame(
    width: int, height: int, measured: MediaInfo, bounds: InputBounds, upload_id: str
) -> None:
    if width * height > bounds.max_pixels:
        raise PermanentError(
            f"upload {upload_id} is {width}x{height}; this worker takes at most "
            f"{bounds.max_pixels} pixels"
        )
    if (width, height) != (measured.width, measured.height):
        raise PermanentError(
            f"upload {upload_id} is {width}x{height}, not the {measured.width}x"
            f"{measured.height} that was checked"
        )
