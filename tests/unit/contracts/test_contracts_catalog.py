from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts import JobType, Plan, Tier, load_catalog


def test_shipped_catalog_has_the_published_plan_limits() -> None:
    catalog = load_catalog()
    free, creator, pro = (catalog.limits(p) for p in (Plan.FREE, Plan.CREATOR, Plan.PRO))
    assert (free.tier, free.max_video_duration_s, free.max_video_height) == (Tier.FREE, 30, 720)
    assert (free.lifetime_videos, free.monthly_video_minutes) == (1, None)
    assert (creator.tier, creator.max_video_duration_s, creator.monthly_video_minutes) == (
        Tier.CREATOR,
        120,
        30,
    )
    assert creator.max_video_height == 1080
    assert (pro.tier, pro.max_video_duration_s, pro.monthly_video_minutes) == (Tier.PRO, 300, 120)
    assert pro.max_video_height == 1080


@pytest.mark.parametrize(
    ("job_type", "quantity", "credits"),
    [
        (JobType.IMAGE_GENERATE, 1, 2),
        (JobType.VIDEO_GENERATE, 61, 61),
        (JobType.VIDEO_ENHANCE, 61 / 60, 20),
        (JobType.VIDEO_ENHANCE, 0.2, 10),
        (JobType.AUDIO_SPEECH, 1, 1),
        (JobType.AUDIO_SPEECH, 1001, 3),
        (JobType.SYNTHETIC, 1, 1),
    ],
)
def test_prices_charge_every_started_unit(job_type: JobType, quantity: float, credits: int) -> None:
    assert load_catalog().price(job_type).of(quantity) == credits


def test_negative_quantities_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        load_catalog().price(JobType.VIDEO_GENERATE).of(-1)


def test_a_catalog_missing_a_plan_or_price_is_refused(tmp_path: Path) -> None:
    shipped = (Path(__file__).resolve().parents[3] / "contracts" / "catalog.toml").read_text()
    broken = tmp_path / "catalog.toml"
    broken.write_text(shipped.replace("[plans.PRO]", "[plans.UNUSED]"))
    with pytest.raises(ValidationError):
        load_catalog(broken)
    broken.write_text(shipped.replace('[prices.synthetic]\ncredits = 1\nper = "job"\n', ""))
    with pytest.raises(ValidationError, match="synthetic"):
        load_catalog(broken)
