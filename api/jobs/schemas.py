"""Request and response bodies of ``/v1/jobs``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts import JobType


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: JobType
    input: dict[str, Any]
    """The job type's input; its ``kind`` may be left out."""
    webhook_url: Annotated[str, Field(max_length=2048)] | None = None
    """Called when the job ends; https only in production."""


class JobLinks(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    self_: str = Field(serialization_alias="self")
    events: str
    cancel: str

    @classmethod
    def of(cls, job_id: str) -> JobLinks:
        base = f"/v1/jobs/{job_id}"
        return cls(self_=base, events=f"{base}/events", cancel=f"{base}/cancel")


class JobSubmitted(BaseModel):
    id: str
    status: str
    """``pending`` for a new job; a repeated request gets the job's current status."""
    links: JobLinks


class JobPublic(BaseModel):
    id: str
    type: JobType
    status: str
    created_at: datetime
    input: dict[str, Any]


class JobCancelling(BaseModel):
    id: str
    status: Literal["cancelling"] = "cancelling"
