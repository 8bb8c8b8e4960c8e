"""Checks of a job request that need only the request itself, the user's plan and the catalog.

Each check raises ``InvalidRequestError`` with every problem it found, in the shape of the
API's validation errors (``loc``, ``msg``, ``type``), or returns the plan limits a request
would break; none of them does I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from contracts import (
    ImageEditInput,
    JobType,
    MediaInfo,
    Plan,
    PlanLimits,
    VideoEnhanceInput,
    VideoGenerateInput,
    input_model_for,
)

__all__ = [
    "MAX_METADATA_BYTES",
    "InvalidRequestError",
    "UploadUse",
    "check_events_filter",
    "check_metadata",
    "check_webhook_url",
    "parse_input",
    "plan_limit_violations",
    "request_hash",
    "uploads_of",
]

_MAX_URL_CHARS: Final = 2048
_MAX_METADATA_KEY: Final = 64
MAX_METADATA_BYTES: Final = 2048
# The contracts' own URL shape: the host part, then anything without whitespace.
_URL_SHAPE: Final = re.compile(r"https?://[^\s/?#]+[^\s]*")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_TEXT_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""Control characters other than tab, line feed and carriage return (C0, DEL and C1)."""

ErrorDetail = dict[str, Any]


class InvalidRequestError(ValueError):
    def __init__(self, errors: list[ErrorDetail]) -> None:
        super().__init__("; ".join(str(error["msg"]) for error in errors))
        self.errors = errors


def _error(loc: list[str], msg: str, type_: str) -> ErrorDetail:
    return {"loc": loc, "msg": msg, "type": type_}


def parse_input(job_type: JobType, raw: Mapping[str, Any], *, synthetic_enabled: bool) -> BaseModel:
    """The typed input of ``job_type``; ``kind`` may be left out and is set to the type."""
    if job_type is JobType.SYNTHETIC and not synthetic_enabled:
        raise InvalidRequestError(
            [_error(["body", "type"], "synthetic jobs are not enabled here", "job_type_disabled")]
        )
    kind = raw.get("kind", job_type.value)
    if kind != job_type.value:
        raise InvalidRequestError(
            [
                _error(
                    ["body", "input", "kind"],
                    f"kind must be {job_type.value!r} (the job type) or left out",
                    "kind_mismatch",
                )
            ]
        )
    try:
        job_input = input_model_for(job_type).model_validate({**raw, "kind": job_type.value})
    except ValidationError as error:
        raise InvalidRequestError(
            [
                _error(
                    ["body", "input", *(str(part) for part in detail["loc"])],
                    detail["msg"],
                    detail["type"],
                )
                for detail in error.errors(include_url=False, include_input=False)
            ]
        ) from None
    stored = _control_errors(job_input.model_dump(mode="json"), ["body", "input"])
    if stored:
        raise InvalidRequestError(stored)
    return job_input


def _control_errors(value: Any, loc: list[str]) -> list[ErrorDetail]:
    """Where ``value`` holds control characters other than ordinary whitespace.

    Prompts and texts are stored and shown as given; NUL fits in neither PostgreSQL's text
    nor its jsonb, and the other controls (escape sequences, C1 codes) only mislead whatever
    displays them.
    """
    if isinstance(value, str):
        if not _TEXT_CONTROL.search(value):
            return []
        return [
            _error(
                loc,
                "must not contain control characters other than tab, line feed and carriage return",
                "control_character",
            )
        ]
    if isinstance(value, Mapping):
        return [
            error
            for key, item in value.items()
            for error in _control_errors(key, loc) + _control_errors(item, [*loc, str(key)])
        ]
    if isinstance(value, list):
        return [
            error for n, item in enumerate(value) for error in _control_errors(item, [*loc, str(n)])
        ]
    return []


def check_webhook_url(url: str, *, https_only: bool) -> str:
    """An absolute http(s) URL without credentials; ``https_only`` in production."""
    problems = _webhook_problems(url, https_only=https_only)
    if problems:
        raise InvalidRequestError(
            [_error(["body", "webhook_url"], msg, "webhook_url") for msg in problems]
        )
    return url


def _webhook_problems(url: str, *, https_only: bool) -> list[str]:
    if len(url) > _MAX_URL_CHARS:
        return [f"must have at most {_MAX_URL_CHARS} characters"]
    if _CONTROL.search(url):
        # urlsplit lets NUL through, and PostgreSQL cannot store it.
        return ["must not contain control characters"]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return ["is not a valid URL"]
    allowed = ("https",) if https_only else ("http", "https")
    # As written, not as urlsplit lower-cases it: the contract's URL pattern is lower case.
    if url.partition(":")[0] not in allowed:
        return [f"must use {' or '.join(allowed)} (in lower case)"]
    if "@" in parts.netloc:
        return ["must not contain a user name or password"]
    if not parts.hostname:
        return ["must name a host"]
    if not _URL_SHAPE.fullmatch(url):
        return ["must be an absolute URL without whitespace"]
    return []


def check_metadata(metadata: Mapping[str, Any]) -> list[ErrorDetail]:
    """Problems of a caller's ``metadata``: long keys, control characters, too many bytes."""
    loc = ["body", "metadata"]
    errors = [
        _error(
            [*loc, key[:_MAX_METADATA_KEY]],
            f"keys have at most {_MAX_METADATA_KEY} characters",
            "metadata_key",
        )
        for key in metadata
        if len(key) > _MAX_METADATA_KEY
    ]
    errors += _control_errors(dict(metadata), loc)
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_METADATA_BYTES:
        errors.append(
            _error(
                loc, f"must be at most {MAX_METADATA_BYTES} bytes as compact JSON", "metadata_size"
            )
        )
    return errors


def check_events_filter(events: Sequence[str], webhook_url: str | None) -> list[ErrorDetail]:
    loc = ["body", "webhook_events_filter"]
    if webhook_url is None:
        return [_error(loc, "needs a webhook_url to send them to", "webhook_events_filter")]
    if len(set(events)) != len(events):
        return [_error(loc, "names an event twice", "webhook_events_filter")]
    return []


def request_hash(
    job_type: JobType,
    job_input: BaseModel,
    webhook_url: str | None,
    options: Mapping[str, Any] | None = None,
) -> str:
    """SHA-256 of the request as understood (defaults filled in), in canonical JSON.

    Two requests that differ only in key order, or in spelling out a default, are the same
    request: both are what a retry of the first might send. ``options`` (metadata, end user,
    webhook events) count where given, so a request without them hashes as it always did.
    """
    given = {name: value for name, value in (options or {}).items() if value is not None}
    canonical = json.dumps(
        {
            "type": job_type.value,
            "input": job_input.model_dump(mode="json"),
            "webhook_url": webhook_url,
            **given,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class UploadUse:
    """An upload a job input refers to, and what it must be."""

    upload_id: str
    kind: Literal["image", "video"]
    primary: bool
    """The job's main input, whose measurements travel with the request."""


def uploads_of(job_input: BaseModel) -> list[UploadUse]:
    if isinstance(job_input, ImageEditInput):
        uses = [UploadUse(upload_id=job_input.upload_id, kind="image", primary=True)]
        if job_input.mask_upload_id is not None:
            uses.append(UploadUse(upload_id=job_input.mask_upload_id, kind="image", primary=False))
        return uses
    if isinstance(job_input, VideoEnhanceInput):
        return [UploadUse(upload_id=job_input.upload_id, kind="video", primary=True)]
    return []


def plan_limit_violations(
    job_input: BaseModel, *, plan: Plan, limits: PlanLimits, media: MediaInfo | None
) -> list[str]:
    """What the request asks beyond the plan's per-job video limits (empty when nothing).

    Monthly and lifetime allowances depend on history and are the stream processors' call.
    """
    duration: float | None = None
    height: int | None = None
    if isinstance(job_input, VideoGenerateInput):
        duration, height = job_input.duration_s, job_input.height
    elif isinstance(job_input, VideoEnhanceInput) and media is not None:
        duration = media.duration_s
        height = media.height * job_input.scale if media.height is not None else None
    violations = []
    if duration is not None and duration > limits.max_video_duration_s:
        violations.append(
            f"a {duration:g} s video is longer than the {plan.value} plan's "
            f"{limits.max_video_duration_s} s"
        )
    if height is not None and height > limits.max_video_height:
        violations.append(
            f"{height} pixels high is more than the {plan.value} plan's {limits.max_video_height}"
        )
    return violations
