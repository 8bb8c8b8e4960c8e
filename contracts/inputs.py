"""Per-job-type inputs, one model per ``JobType``, told apart by their ``kind`` field.

Bounds are the platform's hard limits, checked at the API and again by every reader:
a worker can trust an input it decodes not to exhaust it by accident. Types are strict:
an input is stored as it was given, so ``"5"``, ``true`` and ``64.0`` are no integers
(a whole number is a float, though).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from contracts.enums import JobType
from contracts.fields import Id

__all__ = [
    "INPUT_MODELS",
    "MAX_SYNTHETIC_OUTPUT_BYTES",
    "AudioSpeechInput",
    "ImageEditInput",
    "ImageGenerateInput",
    "JobInput",
    "SyntheticInput",
    "VideoEnhanceInput",
    "VideoGenerateInput",
    "input_model_for",
]

MAX_SYNTHETIC_OUTPUT_BYTES: Final = 64 * 1024 * 1024

Prompt = Annotated[str, Field(min_length=1, max_length=2000)]
Dimension = Annotated[int, Field(ge=64, le=2048, multiple_of=8)]
"""Pixels; diffusion models work on latents 1/8 of the image size."""
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
Steps = Annotated[int, Field(ge=1, le=150)]


def _exact_int(value: Any) -> Any:
    # A literal compares by equality, so 2.0 and True would pass for 2 and 1 without this.
    if type(value) is not int:
        raise ValueError("must be an integer")
    return value


Scale = Annotated[Literal[2, 4], BeforeValidator(_exact_int)]


class _Input(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, use_attribute_docstrings=True
    )


class ImageGenerateInput(_Input):
    """Text to image."""

    kind: Literal["image.generate"] = "image.generate"
    prompt: Prompt
    negative_prompt: Annotated[str, Field(max_length=2000)] | None = None
    width: Dimension = 1024
    height: Dimension = 1024
    steps: Steps = 30
    guidance: Annotated[float, Field(ge=0, le=30)] | None = None
    seed: Seed | None = None


class ImageEditInput(_Input):
    """Edit an uploaded image following a prompt (virtual staging, cloth swap)."""

    kind: Literal["image.edit"] = "image.edit"
    upload_id: Id
    prompt: Prompt
    mask_upload_id: Id | None = None
    strength: Annotated[float, Field(ge=0, le=1)] | None = None
    steps: Steps | None = None
    seed: Seed | None = None


class VideoGenerateInput(_Input):
    """Text to video."""

    kind: Literal["video.generate"] = "video.generate"
    prompt: Prompt
    duration_s: Annotated[float, Field(ge=1, le=300)]
    fps: Annotated[int, Field(ge=1, le=60)] | None = None
    width: Dimension = 1024
    height: Dimension = 576
    seed: Seed | None = None


class VideoEnhanceInput(_Input):
    """Super-resolution of an uploaded video."""

    kind: Literal["video.enhance"] = "video.enhance"
    upload_id: Id
    scale: Scale = 2


class AudioSpeechInput(_Input):
    """Text to speech."""

    kind: Literal["audio.speech"] = "audio.speech"
    text: Annotated[str, Field(min_length=1, max_length=5000)]
    voice: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class SyntheticInput(_Input):
    """A model-free job with a set duration and step count, for benchmarks and tests."""

    kind: Literal["synthetic"] = "synthetic"
    steps: Annotated[int, Field(ge=0, le=10_000)] = 10
    step_ms: Annotated[int, Field(ge=0, le=600_000)] = 100
    fail_at: Annotated[int, Field(ge=0, le=10_000)] | None = None
    """Step index at which the job raises a failure, to exercise the retry path."""
    fail_attempts: Annotated[int, Field(ge=1, le=1000)] | None = None
    """Fail only in the first this many attempts (absent: in every attempt)."""
    output_bytes: Annotated[int, Field(ge=0, le=MAX_SYNTHETIC_OUTPUT_BYTES)] = 1024

    @model_validator(mode="after")
    def _fail_within_steps(self) -> SyntheticInput:
        if self.fail_at is not None and self.fail_at > self.steps:
            raise ValueError(f"fail_at {self.fail_at} is past the last step {self.steps}")
        return self


JobInput = Annotated[
    ImageGenerateInput
    | ImageEditInput
    | VideoGenerateInput
    | VideoEnhanceInput
    | AudioSpeechInput
    | SyntheticInput,
    Field(discriminator="kind"),
]
"""Any job input; the ``kind`` field equals the ``JobType`` value and selects the model."""

INPUT_MODELS: Final = MappingProxyType[JobType, type[_Input]](
    {
        JobType.IMAGE_GENERATE: ImageGenerateInput,
        JobType.IMAGE_EDIT: ImageEditInput,
        JobType.VIDEO_GENERATE: VideoGenerateInput,
        JobType.VIDEO_ENHANCE: VideoEnhanceInput,
        JobType.AUDIO_SPEECH: AudioSpeechInput,
        JobType.SYNTHETIC: SyntheticInput,
    }
)


def input_model_for(job_type: JobType | str) -> type[BaseModel]:
    """The input model for a job type (given as the enum or its string value)."""
    return INPUT_MODELS[JobType(job_type)]
