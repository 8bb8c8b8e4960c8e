"""A model-free pipeline with a set step count and duration, for benchmarks and tests.

It behaves like a model-backed one where the platform can see it (progress per step, a
preview, a cancellation check between steps, an output to store, a failure on request) and
needs neither torch nor a device.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from PIL import Image

from contracts import JobType
from contracts.inputs import SyntheticInput
from gpu_consumers.pipelines._preview import image_preview
from gpu_consumers.pipelines.base import (
    Artifact,
    PermanentError,
    PipelineResult,
    Preview,
    RunContext,
    TransientError,
)

__all__ = ["SyntheticPipeline"]

_PREVIEW_SIDE: Final = 16
_PATTERN: Final = bytes(range(256))


class SyntheticPipeline:
    """``steps`` steps of ``step_ms`` each; ``fail_at`` raises ``TransientError`` after that
    many steps have completed (0: before the first), in the first ``fail_attempts`` attempts
    or, without it, in every attempt."""

    job_type = JobType.SYNTHETIC

    def __init__(
        self,
        *,
        slice_s: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if slice_s <= 0:
            raise ValueError("slice_s must be positive")
        self._slice_s = slice_s
        self._sleep = sleep
        self._clock = clock

    @property
    def memory_bytes(self) -> int:
        return 0

    def load(self, device: str) -> None:
        del device

    def unload(self) -> None:
        return None

    def run(self, ctx: RunContext) -> PipelineResult:
        job = ctx.input
        if not isinstance(job, SyntheticInput):
            raise PermanentError(f"{self.job_type} cannot run a {type(job).__name__}")
        preview_at = max(1, job.steps // 4)
        for step in range(1, job.steps + 1):
            self._fail_if_due(job, step - 1, ctx.attempt)
            ctx.check()
            self._spend(job.step_ms / 1000, ctx)
            ctx.progress(step, job.steps, None)
            if step == preview_at:
                ctx.preview(_preview(step, job.steps))
        self._fail_if_due(job, job.steps, ctx.attempt)
        output = Artifact(
            name="output.bin",
            data=_deterministic_bytes(job.output_bytes),
            content_type="application/octet-stream",
        )
        return PipelineResult(outputs=(output,), usage_units=job.steps)

    def _spend(self, seconds: float, ctx: RunContext) -> None:
        # In slices, checking in between, so a long step still stops promptly.
        deadline = self._clock() + seconds
        while (left := deadline - self._clock()) > 0:
            self._sleep(min(left, self._slice_s))
            ctx.check()

    @staticmethod
    def _fail_if_due(job: SyntheticInput, completed: int, attempt: int) -> None:
        failing = job.fail_attempts is None or attempt <= job.fail_attempts
        if failing and job.fail_at is not None and completed == job.fail_at:
            raise TransientError(f"synthetic failure after {completed} of {job.steps} steps")


def _preview(step: int, steps: int) -> Preview:
    shade = round(255 * step / steps)
    image = Image.new("RGB", (_PREVIEW_SIDE, _PREVIEW_SIDE), (shade, 96, 255 - shade))
    return image_preview(image, step, kind="png")


def _deterministic_bytes(size: int) -> bytes:
    """``size`` bytes cycling through 0..255: the same for the same input, cheap at any size."""
    repeats = -(-size // len(_PATTERN))
    return (_PATTERN * repeats)[:size]
