"""What the pipeline tests share: the tiny models, built once, and a recording RunContext."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch
from pydantic import BaseModel

from gpu_consumers.pipelines import JobStopped, Preview, RunContext
from gpu_consumers.tiny_models import build_tiny_models


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    # One fixed folder for the session: every module that imports this fixture gets its own
    # copy of it, and the completion marker makes the later ones skip the build.
    return build_tiny_models(tmp_path_factory.getbasetemp() / "tiny-models")


@dataclass
class Recorder:
    """Collects what a run reports; ``stop_after`` makes ``check`` stop the job once that
    many progress reports have arrived."""

    stop_after: int | None = None
    progress: list[tuple[int, int]] = field(default_factory=list)
    previews: list[Preview] = field(default_factory=list)
    checks: int = 0

    def context(
        self, job: BaseModel, files: dict[str, Path] | None = None, work_dir: Path | None = None
    ) -> RunContext:
        return RunContext(
            job_id="job-1",
            input=job,
            input_files=files or {},
            work_dir=work_dir,
            progress=self._progress,
            preview=self.previews.append,
            check=self._check,
        )

    def assert_complete(self) -> None:
        """Progress rose step by step and ended at its total."""
        steps = [step for step, _ in self.progress]
        assert steps == sorted(steps)
        assert steps[0] >= 1
        assert len({total for _, total in self.progress}) == 1
        assert self.progress[-1][0] == self.progress[-1][1]

    def _progress(self, step: int, total: int, message: str | None) -> None:
        del message
        self.progress.append((step, total))

    def _check(self) -> None:
        self.checks += 1
        if self.stop_after is not None and len(self.progress) >= self.stop_after:
            raise JobStopped("cancelled")


@contextmanager
def count_calls(module_class: str) -> Iterator[Callable[[], int]]:
    """Counts forward passes of every module whose class is named ``module_class``."""
    calls = 0

    def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
        nonlocal calls
        if type(module).__name__ == module_class:
            calls += 1

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        yield lambda: calls
    finally:
        handle.remove()


def write_video(
    path: Path,
    *,
    width: int,
    height: int,
    frames: int,
    fps: int,
    audio_codec: str | None = "aac",
    audio_rate: int = 16_000,
) -> None:
    """A short H.264 video of moving colour bars, with a sine tone in ``audio_codec``."""
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = None
        if audio_codec is not None:
            audio = container.add_stream(audio_codec, rate=audio_rate, layout="mono")
        for index in range(frames):
            columns = (np.arange(width) + index * 4) % 256
            rgb = np.zeros((height, width, 3), np.uint8)
            rgb[..., 0] = columns
            rgb[..., 1] = 255 - columns
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio is not None:
            samples = math.ceil(audio_rate * Fraction(frames, fps))
            tone = np.sin(np.arange(samples) * 2 * math.pi * 440 / audio_rate) * 0.3
            pcm = (tone * 32767).astype(np.int16)[None, :]
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(pcm[:, start : start + 1024]), format="s16", layout="mono"
                )
                chunk.sample_rate = audio_rate
                chunk.pts = start
                container.mux(audio.encode(chunk))
            container.mux(audio.encode(None))
