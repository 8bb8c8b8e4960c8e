"""The job request as the OpenAPI document publishes it: one model per job type, told apart
by ``type``, each with its input model, limits and defaults.

The route still validates with ``JobCreate`` (``api.jobs.schemas``) and then
``api.jobs.validation.parse_input``: the same strict types, the same control-character
check and the same error locations as before. These models only give the document (and
the clients generated from it) the shape of every input.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from api.webhooks.subscriptions import WebhookEvent
from contracts import (
    AudioSpeechInput,
    ImageEditInput,
    ImageGenerateInput,
    SyntheticInput,
    VideoEnhanceInput,
    VideoGenerateInput,
)

__all__ = [
    "MAX_METADATA_KEYS",
    "TYPED_JOB_REQUEST",
    "EndUser",
    "Metadata",
    "TypedJobRequest",
    "WebhookEventsFilter",
]

WebhookUrl = Annotated[str, Field(max_length=2048)]
WebhookEventsFilter = Annotated[
    list[WebhookEvent],
    Field(
        min_length=1,
        max_length=len(WebhookEvent),
        description="What the webhook announces: `started`, `output` (previews), `progress` "
        "(at most 2 a second) and `completed` (every end). Without it, the end alone.",
    ),
]
MAX_METADATA_KEYS: Final = 16
Metadata = Annotated[
    dict[str, Any],
    Field(
        max_length=MAX_METADATA_KEYS,
        description="The caller's own JSON object, stored and returned as given: at most 16 "
        "keys of at most 64 characters, and 2,048 bytes as compact JSON.",
    ),
]
EndUser = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*$",
        description="The caller's id of its own user the job is for; `GET /v1/jobs` filters by it.",
    ),
]


class _TypedJob(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    webhook_url: WebhookUrl | None = None
    """Called when the job ends (and on the events of ``webhook_events_filter``); https only
    in production."""
    webhook_events_filter: WebhookEventsFilter | None = None
    metadata: Metadata | None = None
    end_user: EndUser | None = None


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
