"""The registry and upcasting, proven with a fake v2 of a real event type."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pytest

from contracts import (
    EVENT_TYPES,
    REGISTRY,
    Envelope,
    Event,
    JobCancelled,
    JobEvent,
    Registry,
    UnknownEventType,
    UnsupportedVersionError,
    decode,
    encode,
    kafka_headers,
)
from contracts.event import join_wire_type, split_wire_type
from contracts.fields import Reason

NAME = "genstream.job.cancelled"
V1 = "genstream.job.cancelled.v1"


class JobCancelledV2(JobEvent):
    TYPE: ClassVar[str] = NAME
    VERSION: ClassVar[int] = 2

    reason: Reason
    cancelled_by: Literal["user", "system"]


class JobCancelledV3(JobEvent):
    TYPE: ClassVar[str] = NAME
    VERSION: ClassVar[int] = 3

    reasons: tuple[Reason, ...]
    cancelled_by: Literal["user", "system"]


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "cancelled_by": "user"}


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    rest = {key: value for key, value in data.items() if key != "reason"}
    return {**rest, "reasons": [data["reason"]]}


def _replacing(model: type[Event]) -> list[type[Event]]:
    return [m for m in EVENT_TYPES if m.TYPE != model.TYPE] + [model]


def test_default_registry_holds_every_event_type_once() -> None:
    assert len(REGISTRY.models) == len(EVENT_TYPES) == 19
    assert all(REGISTRY.models[m.wire_type()] is m for m in EVENT_TYPES)
    assert "genstream.job.completed.v1" in REGISTRY
    assert "genstream.job.completed.v2" not in REGISTRY


def test_wire_type_names() -> None:
    assert JobCancelled.wire_type() == V1
    assert join_wire_type(NAME, 12) == "genstream.job.cancelled.v12"
    assert split_wire_type("genstream.job.cancelled.v12") == (NAME, 12)
    for bad in ("genstream.job.cancelled", "genstream.job.cancelled.v0", "x.v1", "A.b.v1"):
        assert split_wire_type(bad) is None


def test_stored_v1_decodes_as_v2(samples: dict[str, bytes]) -> None:
    registry = Registry(models=_replacing(JobCancelledV2), upcasters={(NAME, 1): _v1_to_v2})
    stored = decode(samples[V1])
    assert isinstance(stored.data, JobCancelled)
    upcast = decode(samples[V1], kafka_headers(stored), registry=registry)
    assert isinstance(upcast.data, JobCancelledV2)
    assert upcast.type == "genstream.job.cancelled.v2"
    assert upcast.data.cancelled_by == "user"
    assert upcast.data.reason == stored.data.reason
    assert upcast.id == stored.id
    assert upcast.version == 2


def test_upcasters_chain_one_version_at_a_time(samples: dict[str, bytes]) -> None:
    registry = Registry(
        models=_replacing(JobCancelledV3),
        upcasters={(NAME, 1): _v1_to_v2, (NAME, 2): _v2_to_v3},
    )
    assert registry.upcast(NAME, 1, {"job_id": "j", "reason": "r"}) == {
        "job_id": "j",
        "reasons": ["r"],
        "cancelled_by": "user",
    }
    assert registry.upcast(NAME, 3, {"job_id": "j"}) == {"job_id": "j"}
    envelope = decode(samples[V1], registry=registry)
    assert isinstance(envelope.data, JobCancelledV3)
    assert envelope.data.reasons == ("cancelled by user",)


def test_the_current_version_round_trips_through_a_new_registry() -> None:
    registry = Registry(models=_replacing(JobCancelledV2), upcasters={(NAME, 1): _v1_to_v2})
    data = JobCancelledV2(job_id="job-1", reason="no longer needed", cancelled_by="system")
    envelope = Envelope.wrap(data, user_id="user-1", source="tests")
    assert decode(encode(envelope, registry=registry), registry=registry) == envelope
    with pytest.raises(UnknownEventType):
        encode(envelope)
    old = Envelope.wrap(JobCancelled(job_id="job-1", reason="r"), user_id="u", source="tests")
    with pytest.raises(UnknownEventType):
        encode(old, registry=registry)


def test_a_version_with_no_upcaster_path_is_refused(samples: dict[str, bytes]) -> None:
    registry = Registry(models=_replacing(JobCancelledV3), upcasters={(NAME, 2): _v2_to_v3})
    with pytest.raises(UnsupportedVersionError):
        decode(samples[V1], registry=registry)
    with pytest.raises(UnsupportedVersionError):
        registry.model_for("genstream.job.cancelled.v4")
    assert registry.model_for("genstream.job.cancelled.v2") is JobCancelledV3


def test_unknown_type_names_are_refused() -> None:
    with pytest.raises(UnknownEventType):
        REGISTRY.model_for("genstream.job.teleported.v1")
    with pytest.raises(UnknownEventType):
        REGISTRY.upcast("genstream.job.teleported", 1, {})


def test_inconsistent_registries_are_refused() -> None:
    with pytest.raises(ValueError, match="two models"):
        Registry(models=[JobCancelled, JobCancelledV2])
    with pytest.raises(ValueError, match="unregistered"):
        Registry(models=[JobCancelled], upcasters={("genstream.job.teleported", 1): _v1_to_v2})
    with pytest.raises(ValueError, match="current version"):
        Registry(models=[JobCancelled], upcasters={(NAME, 1): _v1_to_v2})


def test_registry_mappings_are_read_only() -> None:
    with pytest.raises(TypeError):
        REGISTRY.models["genstream.job.teleported.v1"] = JobCancelled  # type: ignore[index]


def test_event_classes_must_name_a_type_and_version() -> None:
    with pytest.raises(TypeError, match="TYPE"):

        class BadName(Event):
            TYPE: ClassVar[str] = "Not A Name"
            VERSION: ClassVar[int] = 1

    with pytest.raises(TypeError, match="VERSION"):

        class NoVersion(Event):
            TYPE: ClassVar[str] = "genstream.test.no_version"
