"""The CloudEvents-shaped envelope that every event travels in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from contracts.event import Event, JobEvent
from contracts.fields import Id, Traceparent, UtcDatetime
from contracts.traceparent import new_traceparent

__all__ = ["DataT", "Envelope"]

DataT = TypeVar("DataT", bound=Event)


def _new_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel, Generic[DataT]):
    """One event on the wire: CloudEvents 1.0 attributes around a typed ``data``.

    ``Envelope[JobCompleted]`` validates its data as a ``JobCompleted``; decoding picks
    the parameter from ``type``, so the data always comes back as its concrete model.

    On the wire the extension attributes have CloudEvents names, lowercase alphanumerics:
    ``userid`` for ``user_id`` and ``traceparent`` (the distributed-tracing extension) for
    ``trace``. Records stored before carry ``user_id`` and ``trace``, which are still read.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    specversion: Literal["1.0"] = "1.0"
    id: Annotated[str, Field(min_length=1, max_length=128)] = Field(default_factory=_new_id)
    """Unique per event; consumers deduplicate on it."""
    type: Annotated[str, Field(min_length=1, max_length=255)]
    """The wire type of ``data``, such as ``genstream.job.completed.v1``."""
    source: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._:/-]+$")]
    """The producing component, such as ``genstream/api``."""
    time: UtcDatetime = Field(default_factory=_now)
    subject: Annotated[str, Field(min_length=1, max_length=128)]
    """The job id for job events, the user id for credit and plan events."""
    user_id: Id = Field(
        validation_alias=AliasChoices("userid", "user_id"), serialization_alias="userid"
    )
    """The user the event belongs to; the only place events name their user (``userid``)."""
    trace: Traceparent = Field(
        default_factory=new_traceparent,
        validation_alias=AliasChoices("traceparent", "trace"),
        serialization_alias="traceparent",
    )
    """W3C ``traceparent`` of the span that produced the event (``traceparent``)."""
    datacontenttype: Literal["application/json"] = "application/json"
    data: DataT

    @model_validator(mode="after")
    def _consistent(self) -> Envelope[DataT]:
        expected = self.data.wire_type()
        if self.type != expected:
            raise ValueError(f"type {self.type!r} does not match data of type {expected!r}")
        # Job topics are keyed and projected by subject, so it must be the job.
        if isinstance(self.data, JobEvent) and self.subject != self.data.job_id:
            raise ValueError(f"subject {self.subject!r} is not the job id {self.data.job_id!r}")
        return self

    @property
    def version(self) -> int:
        """The schema version of ``data``."""
        return self.data.VERSION

    @classmethod
    def wrap(
        cls,
        data: DataT,
        *,
        user_id: str,
        source: str,
        subject: str | None = None,
        trace: str | None = None,
        event_id: str | None = None,
        time: datetime | None = None,
    ) -> Envelope[DataT]:
        """Put ``data`` in a new envelope, deriving ``type`` and ``subject`` from it.

        Pass the ``trace`` of the event being handled (or its ``child_traceparent``) to
        keep one trace across services; without it a new trace starts here.
        """
        return cls(
            id=event_id or _new_id(),
            type=data.wire_type(),
            source=source,
            time=time or _now(),
            subject=subject or data.default_subject(user_id),
            user_id=user_id,
            trace=trace or new_traceparent(),
            data=data,
        )
