"""Request and response bodies of ``/v1/uploads``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.uploads.probe import MEDIA_KINDS
from contracts.fields import ContentType


class UploadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content_type: Annotated[ContentType, Field(examples=list(MEDIA_KINDS))]
    """image/png, image/jpeg, image/webp, video/mp4, video/quicktime or video/webm."""
    size: Annotated[int, Field(gt=0)]
    """Exact size of the file in bytes; the stored file must match it."""


class UploadCreated(BaseModel):
    id: str
    upload_url: str
    """Where to PUT the file, once, before ``expires_at``: exactly ``size`` bytes. The URL
    creates the object and cannot replace it: a second PUT is refused with 412."""
    method: Literal["PUT"] = "PUT"
    headers: dict[str, str]
    """Headers the PUT must carry exactly as given."""
    expires_at: datetime
