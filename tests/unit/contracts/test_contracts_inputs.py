"""Job inputs: bounds, and the discriminated union on ``kind``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from contracts import (
    ImageGenerateInput,
    JobInput,
    JobQueued,
    JobRequested,
    JobType,
    SyntheticInput,
    Tier,
    VideoEnhanceInput,
    input_model_for,
)

ADAPTER: TypeAdapter[Any] = TypeAdapter(JobInput)

VALID: dict[JobType, dict[str, Any]] = {
    JobType.IMAGE_GENERATE: {"prompt": "a cat"},
    JobType.IMAGE_EDIT: {"upload_id": "upl-1", "prompt": "add a sofa", "strength": 0.6},
    JobType.VIDEO_GENERATE: {"prompt": "waves", "duration_s": 4},
    JobType.VIDEO_ENHANCE: {"upload_id": "upl-2", "scale": 4},
    JobType.AUDIO_SPEECH: {"text": "hello", "voice": "alloy"},
    JobType.SYNTHETIC: {"steps": 3, "step_ms": 0, "fail_at": 2, "output_bytes": 0},
}


@pytest.mark.parametrize("job_type", list(JobType))
def test_every_job_type_has_an_input_model(job_type: JobType) -> None:
    model = input_model_for(job_type)
    assert input_model_for(job_type.value) is model
    parsed = ADAPTER.validate_python({"kind": job_type.value, **VALID[job_type]})
    assert parsed.kind == job_type.value
    assert type(parsed) is model
    assert model(**VALID[job_type]) == parsed


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValidationError):
        ADAPTER.validate_python({"kind": "image.upscale", "prompt": "x"})
    with pytest.raises(ValueError, match=r"image\.upscale"):
        input_model_for("image.upscale")


@pytest.mark.parametrize(
    "change",
    [
        {"width": 1001},
        {"height": 56},
        {"width": 2056},
        {"steps": 0},
        {"steps": 151},
        {"prompt": ""},
        {"prompt": "x" * 2001},
        {"guidance": 30.5},
        {"seed": -1},
        {"seed": 2**32},
        {"unexpected": 1},
    ],
)
def test_image_generate_bounds(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ImageGenerateInput(**{"prompt": "a cat", **change})


def test_image_generate_accepts_its_limits() -> None:
    ImageGenerateInput(prompt="x" * 2000, width=64, height=2048, steps=150, guidance=30, seed=0)


@pytest.mark.parametrize(
    ("job_type", "change"),
    [
        (JobType.IMAGE_EDIT, {"strength": 1.5}),
        (JobType.VIDEO_GENERATE, {"duration_s": 301}),
        (JobType.VIDEO_GENERATE, {"duration_s": 0.5}),
        (JobType.VIDEO_GENERATE, {"fps": 61}),
        (JobType.VIDEO_ENHANCE, {"scale": 3}),
        (JobType.AUDIO_SPEECH, {"text": "x" * 5001}),
        (JobType.SYNTHETIC, {"steps": 10_001}),
        (JobType.SYNTHETIC, {"step_ms": 600_001}),
        (JobType.SYNTHETIC, {"output_bytes": 64 * 1024 * 1024 + 1}),
        (JobType.SYNTHETIC, {"fail_at": 4}),
    ],
)
def test_other_input_bounds(job_type: JobType, change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        input_model_for(job_type)(**{**VALID[job_type], **change})


def test_inputs_are_frozen() -> None:
    value = VideoEnhanceInput(upload_id="upl-1")
    with pytest.raises(ValidationError):
        value.scale = 4  # type: ignore[misc]


def test_job_type_must_match_input_kind() -> None:
    now = datetime.now(UTC)
    with pytest.raises(ValidationError, match="does not match job_type"):
        JobRequested(
            job_id="job-1",
            job_type=JobType.IMAGE_GENERATE,
            input=SyntheticInput(),
            requested_at=now,
        )
    with pytest.raises(ValidationError, match="does not match job_type"):
        JobQueued(
            job_id="job-1",
            job_type=JobType.SYNTHETIC,
            tier=Tier.FREE,
            input=ImageGenerateInput(prompt="x"),
            attempt=1,
            topic="jobs.synthetic.free",
        )


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/hook", "example.com/hook", "https://", "https://exa mple.com", "x" * 10],
)
def test_webhook_urls_must_be_http(url: str) -> None:
    with pytest.raises(ValidationError):
        JobRequested(
            job_id="job-1",
            job_type=JobType.SYNTHETIC,
            input=SyntheticInput(),
            webhook_url=url,
            requested_at=datetime.now(UTC),
        )


def test_webhook_url_length_is_bounded() -> None:
    base = "https://example.com/"
    JobRequested(
        job_id="job-1",
        job_type=JobType.SYNTHETIC,
        input=SyntheticInput(),
        webhook_url=base + "a" * (2048 - len(base)),
        requested_at=datetime.now(UTC),
    )
    with pytest.raises(ValidationError):
        JobRequested(
            job_id="job-1",
            job_type=JobType.SYNTHETIC,
            input=SyntheticInput(),
            webhook_url=base + "a" * (2049 - len(base)),
            requested_at=datetime.now(UTC),
        )
