"""Request and response bodies of ``/v1/jobs``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from api.jobs.typed import TYPED_JOB_REQUEST, EndUser, Metadata, WebhookEventsFilter
from api.webhooks.subscriptions import WebhookEvent
from contracts import JobStatus, JobType, Tier


class JobCreate(BaseModel):
    """What the route validates first; ``api.jobs.validation.parse_input`` then types
    ``input`` by ``type``, so that its errors keep their place (``body.input.<field>``)."""

    model_config = ConfigDict(extra="forbid")

    type: JobType
    input: dict[str, Any]
    """The job type's input; its ``kind`` may be left out."""
    webhook_url: Annotated[str, Field(max_length=2048)] | None = None
    """Called when the job ends; https only in production."""
    webhook_events_filter: WebhookEventsFilter | None = None
    metadata: Metadata | None = None
    end_user: EndUser | None = None

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # Published as what it accepts once typed: a union over ``type`` of every job
        # type's request, its input model with limits and defaults.
        return handler(TYPED_JOB_REQUEST.core_schema)


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
    status: JobStatus
    """``pending`` for a new job; a repeated request gets the job's current status."""
    links: JobLinks


class JobError(BaseModel):
    code: str | None
    """Machine-readable: a worker's error code, a rejection reason, ``cancelled`` or ``expired``."""
    message: str | None


class OutputPublic(BaseModel):
    name: str
    """The file's name within the job's outputs."""
    size: int
    """Bytes."""
    content_type: str
    blurhash: str | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    url: str | None = None
    """A presigned GET URL, valid until the job's ``urls_expire_at``."""


class PreviewPublic(BaseModel):
    content_type: str
    blurhash: str | None = None
    attempt: int
    step: int
    url: str | None = None
    """A presigned GET URL, valid until the job's ``urls_expire_at``."""


class QueuePublic(BaseModel):
    """Where a queued job stands, estimated from the read model."""

    position: int
    """Jobs expected to start before this one: those of its workload and tier queued before
    it, and the other tiers' share of the starts meanwhile (pro 70 %, creator 20 %, free 10 %
    under saturation)."""
    same_tier_ahead: int | None = None
    """Jobs of the same workload and tier queued before this one that wait still."""
    workers: int
    """Workers seen running this workload recently (at least 1)."""
    median_run_s: float | None
    """Median run time of this job type's recent completed runs; ``None`` without history."""
    estimated_start_s: float | None
    """Seconds until a worker is expected to take the job."""
    eta_s: float | None
    """Seconds until the job is expected to finish."""
    run_s: float | None = None
    """This job's own expected run: its type's recent time per unit of work (steps x pixels,
    seconds of video, characters) times its work."""


class JobSummary(BaseModel):
    id: str
    type: JobType
    status: JobStatus
    created_at: datetime
    updated_at: datetime
    tier: Tier | None = None
    finished_at: datetime | None = None
    error: JobError | None = None
    credits_charged: int | None = None
    metadata: dict[str, Any] | None = None
    """The caller's ``metadata``, as given."""
    end_user: str | None = None
    links: JobLinks


class JobPage(BaseModel):
    jobs: list[JobSummary]
    """Newest first."""
    next_cursor: str | None


class JobPublic(JobSummary):
    input: dict[str, Any]
    attempt: int | None = None
    worker_id: str | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    run_ms: int | None = None
    credits_reserved: int | None = None
    """Credits held when the job was accepted."""
    credits_charged: int | None = None
    """Credits the job cost once settled; 0 when its reservation was released."""
    outputs: list[OutputPublic] = []
    preview: PreviewPublic | None = None
    """The latest preview a worker stored while the job ran."""
    queue: QueuePublic | None = None
    """Set while the job is queued."""
    urls_expire_at: datetime | None = None
    """When the presigned URLs in ``outputs`` and ``preview`` stop working."""
    webhook_events_filter: list[WebhookEvent] | None = None
    """The webhook events subscribed to; ``None``: the end alone (``completed``)."""
    outputs_expired_at: datetime | None = None
    """When the plan's retention removed the outputs from storage; they have no URLs since."""


class JobCancelling(BaseModel):
    id: str
    status: Literal["cancelling"] = "cancelling"
