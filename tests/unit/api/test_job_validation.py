"""Checks of a job request that need no I/O: input, webhook URL, request hash, plan limits."""

from __future__ import annotations

from typing import Any

import pytest

from api.jobs.validation import (
    InvalidRequestError,
    UploadUse,
    check_webhook_url,
    parse_input,
    plan_limit_violations,
    request_hash,
    uploads_of,
)
from contracts import (
    ImageEditInput,
    ImageGenerateInput,
    JobType,
    MediaInfo,
    Plan,
    SyntheticInput,
    VideoEnhanceInput,
    VideoGenerateInput,
    load_catalog,
)

CATALOG = load_catalog()


def _errors(job_type: JobType, raw: dict[str, Any], *, synthetic: bool = True) -> list[Any]:
    with pytest.raises(InvalidRequestError) as caught:
        parse_input(job_type, raw, synthetic_enabled=synthetic)
    return caught.value.errors


# --- input -----------------------------------------------------------------------------------


def test_the_kind_is_the_job_type_and_defaults_are_filled_in() -> None:
    parsed = parse_input(JobType.IMAGE_GENERATE, {"prompt": "a red barn"}, synthetic_enabled=False)
    assert parsed == ImageGenerateInput(prompt="a red barn")
    assert parse_input(
        JobType.IMAGE_GENERATE, {"kind": "image.generate", "prompt": "x"}, synthetic_enabled=False
    ) == ImageGenerateInput(prompt="x")


def test_a_width_that_is_not_a_multiple_of_8_is_an_error_at_its_place() -> None:
    errors = _errors(JobType.IMAGE_GENERATE, {"prompt": "x", "width": 100})
    assert [error["loc"] for error in errors] == [["body", "input", "width"]]
    assert errors[0]["type"] == "multiple_of"


def test_every_error_is_listed_without_echoing_the_input() -> None:
    errors = _errors(JobType.IMAGE_GENERATE, {"prompt": "p" * 2001, "steps": 0, "colour": "red"})
    assert {tuple(error["loc"]) for error in errors} == {
        ("body", "input", "prompt"),
        ("body", "input", "steps"),
        ("body", "input", "colour"),
    }
    assert all(set(error) == {"loc", "msg", "type"} for error in errors)


def test_a_kind_other_than_the_type_is_refused() -> None:
    errors = _errors(JobType.IMAGE_GENERATE, {"kind": "synthetic", "prompt": "x"})
    assert errors[0]["loc"] == ["body", "input", "kind"]


def test_synthetic_jobs_need_to_be_switched_on() -> None:
    errors = _errors(JobType.SYNTHETIC, {}, synthetic=False)
    assert errors[0]["loc"] == ["body", "type"]
    assert parse_input(JobType.SYNTHETIC, {"steps": 2}, synthetic_enabled=True) == SyntheticInput(
        steps=2
    )


def test_nul_characters_are_refused_wherever_they_are_in_the_input() -> None:
    # PostgreSQL keeps NUL in neither text nor jsonb.
    errors = _errors(JobType.IMAGE_GENERATE, {"prompt": "a\x00cat", "negative_prompt": "\x00"})
    assert sorted(error["loc"] for error in errors) == [
        ["body", "input", "negative_prompt"],
        ["body", "input", "prompt"],
    ]
    assert {error["type"] for error in errors} == {"control_character"}


@pytest.mark.parametrize("char", ["\x1b", "\x07", "\x0b", "\x7f", "\x85", "\x9b"])
def test_control_characters_are_refused_in_prompts_and_texts(char: str) -> None:
    for job_type, field in [
        (JobType.IMAGE_GENERATE, "prompt"),
        (JobType.AUDIO_SPEECH, "text"),
    ]:
        errors = _errors(job_type, {field: f"a{char}[31mred"})
        assert [(error["loc"], error["type"]) for error in errors] == [
            (["body", "input", field], "control_character")
        ]


def test_ordinary_whitespace_is_kept_as_given() -> None:
    text = "line one\n\tline two\r\nthree"
    parsed = parse_input(JobType.AUDIO_SPEECH, {"text": text}, synthetic_enabled=False)
    assert parsed.model_dump()["text"] == text


@pytest.mark.parametrize(
    ("field", "value"),
    [("width", "512"), ("width", True), ("width", 512.0), ("steps", "4"), ("seed", 1.0)],
)
def test_integers_are_taken_only_as_integers(field: str, value: object) -> None:
    errors = _errors(JobType.IMAGE_GENERATE, {"prompt": "x", field: value})
    assert [error["loc"] for error in errors] == [["body", "input", field]]
    assert errors[0]["type"] == "int_type"


@pytest.mark.parametrize("scale", [2.0, True, "2"])
def test_a_scale_is_taken_only_as_an_integer(scale: object) -> None:
    errors = _errors(JobType.VIDEO_ENHANCE, {"upload_id": "upl_x", "scale": scale})
    assert [error["loc"] for error in errors] == [["body", "input", "scale"]]


def test_strings_and_floats_are_taken_as_themselves() -> None:
    parsed = parse_input(
        JobType.VIDEO_GENERATE, {"prompt": "x", "duration_s": 5}, synthetic_enabled=False
    )
    assert parsed.model_dump()["duration_s"] == 5.0
    errors = _errors(JobType.IMAGE_GENERATE, {"prompt": 5})
    assert errors[0]["type"] == "string_type"


# --- webhook URL -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/genstream?x=1", "http://127.0.0.1:8080/hook"]
)
def test_http_and_https_urls_are_accepted_outside_production(url: str) -> None:
    assert check_webhook_url(url, https_only=False) == url


@pytest.mark.parametrize(
    ("url", "https_only", "reason"),
    [
        ("http://hooks.example.com/x", True, "must use https"),
        ("ftp://hooks.example.com/x", False, "must use http or https"),
        ("javascript:alert(1)", False, "must use"),
        ("file:///etc/passwd", False, "must use"),
        ("https://user:secret@hooks.example.com/x", False, "user name or password"),
        ("https://user@hooks.example.com/x", False, "user name or password"),
        ("https:///path-only", False, "must name a host"),
        ("https://hooks.example.com/a b", False, "without whitespace"),
        ("https://hooks.example.com:99999/x", False, "not a valid URL"),
        ("https://hooks.example.com/" + "a" * 2048, False, "at most 2048"),
        ("HTTPS://hooks.example.com/x", False, "must use"),
        ("https://hooks.example.com/\x00", False, "control characters"),
        ("https://hooks.example.com/\x7f", False, "control characters"),
    ],
)
def test_unsafe_or_malformed_webhook_urls_are_refused(
    url: str, https_only: bool, reason: str
) -> None:
    with pytest.raises(InvalidRequestError, match=reason) as caught:
        check_webhook_url(url, https_only=https_only)
    assert caught.value.errors[0]["loc"] == ["body", "webhook_url"]


# --- request hash ----------------------------------------------------------------------------


def test_the_hash_ignores_key_order_and_spelled_out_defaults() -> None:
    short = parse_input(JobType.IMAGE_GENERATE, {"prompt": "x"}, synthetic_enabled=False)
    spelled = parse_input(
        JobType.IMAGE_GENERATE,
        {"width": 1024, "prompt": "x", "kind": "image.generate"},
        synthetic_enabled=False,
    )
    assert request_hash(JobType.IMAGE_GENERATE, short, None) == request_hash(
        JobType.IMAGE_GENERATE, spelled, None
    )


def test_the_hash_sees_every_part_of_the_request() -> None:
    base = ImageGenerateInput(prompt="x")
    digest = request_hash(JobType.IMAGE_GENERATE, base, None)
    assert len(digest) == 64
    assert digest != request_hash(JobType.IMAGE_GENERATE, ImageGenerateInput(prompt="y"), None)
    assert digest != request_hash(JobType.IMAGE_GENERATE, base, "https://hooks.example.com/")


# --- uploads and plan limits -----------------------------------------------------------------


def test_uploads_of_an_input() -> None:
    edit = ImageEditInput(upload_id="upl_a", mask_upload_id="upl_m", prompt="stage it")
    assert uploads_of(edit) == [
        UploadUse(upload_id="upl_a", kind="image", primary=True),
        UploadUse(upload_id="upl_m", kind="image", primary=False),
    ]
    assert uploads_of(VideoEnhanceInput(upload_id="upl_v")) == [
        UploadUse(upload_id="upl_v", kind="video", primary=True)
    ]
    assert uploads_of(ImageGenerateInput(prompt="x")) == []


def _violations(job_input: Any, plan: Plan, media: MediaInfo | None = None) -> list[str]:
    return plan_limit_violations(job_input, plan=plan, limits=CATALOG.limits(plan), media=media)


def test_a_free_plan_video_is_at_most_30_seconds_and_720_high() -> None:
    assert _violations(VideoGenerateInput(prompt="x", duration_s=30, height=720), Plan.FREE) == []
    too_long = _violations(VideoGenerateInput(prompt="x", duration_s=60, height=576), Plan.FREE)
    assert too_long == ["a 60 s video is longer than the FREE plan's 30 s"]
    both = _violations(VideoGenerateInput(prompt="x", duration_s=31, height=1080), Plan.FREE)
    assert len(both) == 2
    assert _violations(VideoGenerateInput(prompt="x", duration_s=60, height=1080), Plan.PRO) == []


def test_an_enhancement_is_limited_by_the_measured_video_and_its_scale() -> None:
    media = MediaInfo(content_type="video/mp4", size=1, duration_s=10.0, width=640, height=360)
    assert _violations(VideoEnhanceInput(upload_id="upl_v", scale=2), Plan.FREE, media) == []
    four_times = _violations(VideoEnhanceInput(upload_id="upl_v", scale=4), Plan.FREE, media)
    assert four_times == ["1440 pixels high is more than the FREE plan's 720"]
    long_clip = media.model_copy(update={"duration_s": 45.5})
    assert len(_violations(VideoEnhanceInput(upload_id="upl_v"), Plan.FREE, long_clip)) == 1
    assert _violations(VideoEnhanceInput(upload_id="upl_v"), Plan.CREATOR, long_clip) == []


def test_other_job_types_have_no_per_job_limits() -> None:
    assert _violations(ImageGenerateInput(prompt="x", height=2048), Plan.FREE) == []
