"""Encoding and decoding envelopes: what is refused and why."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest

from contracts import (
    REGISTRY,
    ContractError,
    EncodeError,
    Envelope,
    HeaderMismatchError,
    InvalidEventError,
    JobCancelled,
    JobEvent,
    JobStarted,
    MalformedEventError,
    UnknownEventType,
    UnsupportedVersionError,
    codec,
    decode,
    encode,
    kafka_headers,
)

CANCELLED = "genstream.job.cancelled.v1"


def _started() -> Envelope[JobStarted]:
    data = JobStarted(job_id="job-1", worker_id="worker-1", attempt=1)
    return Envelope.wrap(data, user_id="user-1", source="tests")


def _with(sample: bytes, **changes: Any) -> bytes:
    return json.dumps({**json.loads(sample), **changes}).encode()


def _with_data(sample: bytes, **changes: Any) -> bytes:
    body = json.loads(sample)
    return json.dumps({**body, "data": {**body["data"], **changes}}).encode()


def test_encode_is_compact_utf8_json() -> None:
    value = encode(_started())
    assert b": " not in value
    assert b", " not in value
    assert json.loads(value.decode("utf-8"))["type"] == "genstream.job.started.v1"


def test_encode_keeps_non_ascii_text() -> None:
    data = JobCancelled(job_id="job-1", reason="annulé par l'utilisateur ✓")
    envelope = Envelope.wrap(data, user_id="user-1", source="tests")
    assert decode(encode(envelope)).data == data


def test_kafka_headers() -> None:
    envelope = _started()
    assert kafka_headers(envelope) == [
        ("content-type", b"application/cloudevents+json"),
        ("type", b"genstream.job.started.v1"),
        ("id", envelope.id.encode()),
        ("traceparent", envelope.trace.encode()),
    ]
    # Structured mode alone: no ce_ header, which would make a reader take binary mode.
    assert not any(name.startswith("ce_") for name, _ in kafka_headers(envelope))


def test_encode_refuses_a_model_the_registry_does_not_hold() -> None:
    class Impostor(JobEvent):
        TYPE: ClassVar[str] = "genstream.job.started"
        VERSION: ClassVar[int] = 1

        worker_id: str
        attempt: int

    envelope = Envelope.wrap(
        Impostor(job_id="job-1", worker_id="w", attempt=1), user_id="user-1", source="tests"
    )
    with pytest.raises(UnknownEventType):
        encode(envelope)


def test_encode_fails_loudly_on_unserializable_values() -> None:
    envelope = _started()
    broken = envelope.model_copy(update={"time": object()})
    with pytest.raises(EncodeError):
        encode(broken)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="tombstone"),
        pytest.param(b"", id="empty"),
        pytest.param(b"{not json", id="bad-json"),
        pytest.param(b"\xff\xfe{}", id="bad-utf8"),
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b'"text"', id="string"),
        pytest.param(b'{"type": "a", "type": "b"}', id="duplicate-key"),
        pytest.param(b'{"type": "genstream.job.started.v1", "x": NaN}', id="nan"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="too-deep"),
    ],
)
def test_malformed_values_are_refused(value: bytes | None) -> None:
    with pytest.raises(MalformedEventError):
        decode(value)


@pytest.mark.parametrize(
    "wire_type",
    ["genstream.job.teleported.v1", "genstream.job.started", "job.started.v1", "", "V1"],
)
def test_unknown_types_are_refused(samples: dict[str, bytes], wire_type: str) -> None:
    with pytest.raises(UnknownEventType) as raised:
        decode(_with(samples[CANCELLED], type=wire_type))
    assert raised.value.wire_type == wire_type


def test_a_newer_version_than_the_reader_knows_is_refused(samples: dict[str, bytes]) -> None:
    with pytest.raises(UnsupportedVersionError):
        decode(_with(samples[CANCELLED], type="genstream.job.cancelled.v2"))


@pytest.mark.parametrize(
    ("value_change", "data_change"),
    [
        pytest.param({"type": 7}, {}, id="type-not-string"),
        pytest.param({"type": "genstream.job.started.v1"}, {}, id="type-body-disagree"),
        pytest.param({"specversion": "0.3"}, {}, id="specversion"),
        pytest.param({"time": "2025-01-15T12:00:00"}, {}, id="naive-time"),
        pytest.param(
            {"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"}, {}, id="zero-trace"
        ),
        pytest.param({"subject": "another-job"}, {}, id="subject-not-job"),
        pytest.param({"userid": ""}, {}, id="empty-user"),
        pytest.param({"extension": "x"}, {}, id="extra-envelope-field"),
        pytest.param({}, {"reason": ""}, id="empty-reason"),
        pytest.param({}, {"surprise": True}, id="extra-data-field"),
        pytest.param({}, {"job_id": None}, id="null-job-id"),
    ],
)
def test_wrong_shapes_are_refused(
    samples: dict[str, bytes], value_change: dict[str, Any], data_change: dict[str, Any]
) -> None:
    value = _with_data(_with(samples[CANCELLED], **value_change), **data_change)
    with pytest.raises(InvalidEventError):
        decode(value)


def test_missing_data_is_refused(samples: dict[str, bytes]) -> None:
    body = json.loads(samples[CANCELLED])
    del body["data"]
    with pytest.raises(InvalidEventError):
        decode(json.dumps(body).encode())


def test_strings_are_not_coerced_to_numbers(samples: dict[str, bytes]) -> None:
    value = _with_data(samples["genstream.job.started.v1"], attempt="1")
    with pytest.raises(InvalidEventError):
        decode(value)


def test_times_are_normalised_to_utc(samples: dict[str, bytes]) -> None:
    value = _with(samples[CANCELLED], time="2025-01-15T14:00:00+02:00")
    assert decode(value).time == decode(samples[CANCELLED]).time


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("content-type", b"application/json"),
        ("type", b"genstream.job.started.v1"),
        ("id", b"another-id"),
        ("ID", None),
        ("ce_type", b"genstream.job.started.v1"),
        ("ce_id", b"another-id"),
        ("schema-version", b"2"),
        ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01"),
        ("CE_TYPE", b"genstream.job.started.v1"),
        ("ce_id", None),
        ("ce_id", b"\xff"),
    ],
)
def test_headers_that_disagree_with_the_body_are_refused(
    samples: dict[str, bytes], name: str, value: bytes | None
) -> None:
    envelope = decode(samples[CANCELLED])
    headers: list[tuple[str, str | bytes | None]] = [*kafka_headers(envelope), (name, value)]
    with pytest.raises(HeaderMismatchError):
        decode(samples[CANCELLED], headers)


def test_headers_that_agree_are_accepted(samples: dict[str, bytes]) -> None:
    envelope = decode(samples[CANCELLED])
    headers: list[tuple[str, str | bytes | None]] = [
        ("content-type", "application/cloudevents+json; charset=utf-8"),
        ("ce_type", CANCELLED),
        ("unrelated", None),
    ]
    assert decode(samples[CANCELLED], headers) == envelope
    assert decode(samples[CANCELLED], []) == envelope


def test_every_decode_error_is_a_contract_error() -> None:
    for error in (
        MalformedEventError,
        UnknownEventType,
        UnsupportedVersionError,
        InvalidEventError,
        HeaderMismatchError,
        EncodeError,
    ):
        assert issubclass(error, ContractError)


def _canonical() -> tuple[bytes, list[tuple[str, str | bytes | None]]]:
    envelope = Envelope.wrap(
        JobCancelled(job_id="job-1", reason="a:b"), user_id="user-1", source="tests"
    )
    return encode(envelope), list[tuple[str, str | bytes | None]](kafka_headers(envelope))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(b'{"specversion"', b'{"source":"x","specversion"', id="first-wins"),
        pytest.param(b',"subject"', b',"source":"x","subject"', id="last-wins"),
        pytest.param(b'"reason"', b'"reason":"c","reason"', id="in-data"),
        pytest.param(b',"subject"', b',"\\u0073ource":"x","subject"', id="escaped"),
        pytest.param(b',"subject"', b',"source":"tests","subject"', id="same-value"),
        pytest.param(b',"subject"', b',"source" : "x","subject"', id="spaced"),
    ],
)
def test_duplicate_keys_are_refused_with_headers_too(old: bytes, new: bytes) -> None:
    value, headers = _canonical()
    assert value.count(old) == 1
    with pytest.raises(MalformedEventError, match="duplicate key"):
        decode(value.replace(old, new), headers)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(b"", b"", id="canonical"),
        pytest.param(b'"reason":"a:b"', b'"reason" : "a\\u003ab"', id="escaped-colon"),
        pytest.param(b'{"specversion":"1.0",', b"{", id="default-left-out"),
        pytest.param(b'"job_id":"job-1"', b'"job_id":\t"job-1"', id="whitespace"),
        pytest.param(b'"type"', b'"ty\\u0070e"', id="escaped-key"),
    ],
)
def test_records_read_once_or_checked_read_the_same(old: bytes, new: bytes) -> None:
    """Only a record that is its envelope's own encoding skips the checking parser; any
    other reads the long way, to the same envelope."""
    value, headers = _canonical()
    changed = value.replace(old, new)
    once = codec._decode_canonical(changed, headers, REGISTRY)
    assert (once is not None) == (changed == value)
    assert decode(changed, headers) == codec._decode_checked(changed, headers, REGISTRY)


def test_every_stored_sample_reads_the_same_with_its_headers(samples: dict[str, bytes]) -> None:
    for wire_type, sample in samples.items():
        envelope = decode(sample)
        headers = kafka_headers(envelope)
        assert decode(sample, headers) == envelope, wire_type
        assert decode(encode(envelope), headers) == envelope, wire_type


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("type", b"genstream.job.started.v1"),
        ("id", b"another-id"),
        ("ce_type", b"genstream.job.started.v1"),
        ("ce_id", b"another-id"),
        ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01"),
        ("type", b"\xff"),
    ],
)
def test_canonical_records_with_disagreeing_headers_are_refused(name: str, value: bytes) -> None:
    canonical, headers = _canonical()
    for changed in ([(name, value), *headers], [*headers, (name, value)]):
        with pytest.raises(HeaderMismatchError):
            decode(canonical, changed)
