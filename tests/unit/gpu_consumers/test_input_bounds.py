"""The worker's own bounds on an uploaded input, read from its header before decoding."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from contracts import MediaInfo
from gpu_consumers.input_bounds import InputBounds, check_input
from gpu_consumers.pipelines.base import PermanentError
from tests.unit.api.test_upload_probe import make_video

BOUNDS = InputBounds(max_pixels=1_000_000, max_duration_s=60)


def _png(path: Path, width: int, height: int) -> MediaInfo:
    out = io.BytesIO()
    Image.new("RGB", (width, height)).save(out, format="PNG")
    path.write_bytes(out.getvalue())
    return MediaInfo(content_type="image/png", size=path.stat().st_size, width=width, height=height)


def test_an_image_as_measured_passes(tmp_path: Path) -> None:
    path = tmp_path / "in"
    check_input(path, _png(path, 64, 48), BOUNDS, upload_id="u")


def test_an_image_larger_than_measured_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "in"
    actual = _png(path, 640, 480)
    claimed = actual.model_copy(update={"width": 64, "height": 48})
    with pytest.raises(PermanentError, match="not the 64x48 that was checked"):
        check_input(path, claimed, BOUNDS, upload_id="u")


def test_an_image_past_the_workers_own_bound_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "in"
    media = _png(path, 1200, 1000)
    with pytest.raises(PermanentError, match="at most 1000000 pixels"):
        check_input(path, media, BOUNDS, upload_id="u")


def test_other_bytes_than_measured_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "in"
    media = _png(path, 64, 48)
    with pytest.raises(PermanentError, match="not the file that was checked"):
        check_input(path, media.model_copy(update={"size": media.size - 1}), BOUNDS, upload_id="u")


def test_an_input_without_measurements_was_never_checked(tmp_path: Path) -> None:
    path = tmp_path / "in"
    _png(path, 64, 48)
    with pytest.raises(PermanentError, match="was not checked"):
        check_input(path, None, BOUNDS, upload_id="u")


def _video(path: Path, *, frames: int, fps: int, duration_s: float) -> MediaInfo:
    data = make_video(path, frames=frames, fps=fps, width=64, height=48)
    return MediaInfo(
        content_type="video/mp4", size=len(data), width=64, height=48, duration_s=duration_s
    )


def test_a_video_as_measured_passes(tmp_path: Path) -> None:
    path = tmp_path / "in.mp4"
    check_input(path, _video(path, frames=24, fps=12, duration_s=2.0), BOUNDS, upload_id="u")


def test_a_video_longer_than_paid_for_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.mp4"
    media = _video(path, frames=120, fps=12, duration_s=2.0)
    with pytest.raises(PermanentError, match=r"checked for 2\.00 s"):
        check_input(path, media, BOUNDS, upload_id="u")


def test_a_video_past_the_workers_own_duration_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.mp4"
    media = _video(path, frames=120, fps=12, duration_s=10.0)
    bounds = InputBounds(max_pixels=1_000_000, max_duration_s=5)
    with pytest.raises(PermanentError, match=r"plays 10\.00 s"):
        check_input(path, media, bounds, upload_id="u")
