"""The job request as the OpenAPI document publishes it: one model per job type, told apart
by ``type``, each with its input model, limits and defaults.

The route still validates with ``JobCreate`` (``api.jobs.schemas``) and then
``api.jobs.validation.parse_input``: the same strict types, the same control-character
check and the same error locations as before. These models only give the document (and
the clients generated from it) the shape of every input.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from contracts import (
    AudioSpeechInput,
    ImageEditInput,
    ImageGenerateInput,
    SyntheticInput,
    VideoEnhanceInput,
    VideoGenerateInput,
)

__all__ = ["TYPED_JOB_REQUEST", "TypedJobRequest"]

WebhookUrl = Annotated[str, Field(max_length=2048)]


class _TypedJob(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    webhook_url: WebhookUrl | None = None
    """Called when the job ends; https only in production."""


class ImageGenerateJob(_TypedJob):
    type: Literal["image.generate"]
    input: ImageGenerateInput


class ImageEditJob(_TypedJob):
    type: Literal["image.edit"]
    input: ImageEditInput


class VideoGenerateJob(_TypedJob):
    type: Literal["video.generate"]
    input: VideoGenerateInput


class VideoEnhanceJob(_TypedJob):
    type: Literal["video.enhance"]
    input: VideoEnhanceInput


class AudioSpeechJob(_TypedJob):
    type: Literal["audio.speech"]
    input: AudioSpeechInput


class SyntheticJob(_TypedJob):
    """Accepted only where the server enables synthetic jobs (benchmarks, tests)."""

    type: Literal["synthetic"]
    input: SyntheticInput


TypedJobRequest = Annotated[
    ImageGenerateJob
    | ImageEditJob
    | VideoGenerateJob
    | VideoEnhanceJob
    | AudioSpeechJob
    | SyntheticJob,
    Field(discriminator="type"),
]
"""Any job request; ``type`` selects the variant and with it the input model."""

TYPED_JOB_REQUEST: Final = TypeAdapter[TypedJobRequest](TypedJobRequest)
