"""The one interface every pipeline implements, and what a run gets and gives back.

A pipeline is loaded once (onto the device the worker chose) and then runs jobs one at a
time. It reports progress through ``RunContext.progress``, offers previews through
``RunContext.preview`` and calls ``RunContext.check`` between steps, which raises
``JobStopped`` once the job is cancelled or out of time: a running job stops within one step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel

from contracts import JobType
from contracts.errors import JobErrorCode

__all__ = [
    "Artifact",
    "ContentFilteredError",
    "JobStopped",
    "LimitExceededError",
    "PermanentError",
    "Pipeline",
    "PipelineResult",
    "Preview",
    "RunContext",
    "TransientError",
]


class TransientError(Exception):
    """A failure that another attempt may not meet (a flaky store, a busy device)."""


class PermanentError(Exception):
    """A failure no retry fixes (an input the model cannot handle, a broken model)."""

    code: str = JobErrorCode.PERMANENT_ERROR.value
    """The ``error_code`` the job fails with."""


class LimitExceededError(PermanentError):
    """The job went past a resource bound (memory, output length): it fails, unretried."""

    def __init__(self, code: JobErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code.value


class ContentFilteredError(PermanentError):
    """The safety checker withheld the result; the job fails instead of returning it."""

    code = JobErrorCode.CONTENT_FILTERED.value


class JobStopped(Exception):  # noqa: N818 - it is a signal, not an error
    """Raised by ``RunContext.check`` when the job must stop (cancelled or timed out)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass(frozen=True, slots=True)
class Artifact:
    """One output file of a run, in memory, before it is stored."""

    name: str
    """The file name under the job's output prefix, e.g. ``image.png``."""
    data: bytes
    content_type: str
    blurhash: str | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True, slots=True)
class Preview:
    """An early look at a running job (a latent decode, the first frame)."""

    step: int
    data: bytes
    content_type: str
    blurhash: str | None = None


@dataclass(frozen=True, slots=True)
class PipelineResult:
    outputs: tuple[Artifact, ...]
    usage_units: int
    """What the job is metered in: images, output seconds, input minutes, characters, steps."""


def _no_progress(step: int, total: int, message: str | None) -> None:
    del step, total, message


def _no_preview(preview: Preview) -> None:
    del preview


def _never_stop() -> None:
    return None


@dataclass(slots=True)
class RunContext:
    """What a pipeline is given for one job."""

    job_id: str
    input: BaseModel
    """The job's input model (``contracts.inputs``), matching the pipeline's job type."""
    attempt: int = 1
    """Which attempt at the job this run is (1 for the first)."""
    input_files: dict[str, Path] = field(default_factory=dict)
    """Uploads the input refers to, downloaded: upload id -> local file."""
    work_dir: Path | None = None
    """A private scratch folder for the run, removed afterwards."""
    progress: Callable[[int, int, str | None], None] = _no_progress
    """``progress(step, total_steps, message)``; steps count from 1 to ``total_steps``."""
    preview: Callable[[Preview], None] = _no_preview
    check: Callable[[], None] = _never_stop
    """Raises ``JobStopped`` when the job must stop; call it between steps."""


class Pipeline(Protocol):
    """A model-backed (or synthetic) generator of one job type."""

    job_type: JobType

    @property
    def memory_bytes(self) -> int:
        """What the loaded weights occupy on the device, for the model cache's budget."""
        ...

    def load(self, device: str) -> None:
        """Loads the model onto ``device`` (``cuda``, ``mps`` or ``cpu``)."""
        ...

    def unload(self) -> None:
        """Frees the weights; ``load`` may be called again later."""
        ...

    def run(self, ctx: RunContext) -> PipelineResult:
        """Runs one job; raises ``JobStopped``, ``TransientError`` or ``PermanentError``."""
        ...
