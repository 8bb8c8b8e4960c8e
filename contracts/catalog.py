"""Plans and prices, read from ``catalog.toml``: limits are data that code looks up."""

from __future__ import annotations

import functools
import math
import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.enums import JobType, Plan, Tier

__all__ = ["CATALOG_ENV", "Catalog", "PlanLimits", "Price", "load_catalog"]

_Positive = Annotated[int, Field(gt=0)]


class PlanLimits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tier: Tier
    max_video_duration_s: _Positive
    max_video_height: _Positive
    monthly_video_minutes: _Positive | None = None
    lifetime_videos: _Positive | None = None
    max_concurrent_jobs: _Positive
    """Jobs of one user queued or running at once; the user's further jobs wait their turn."""
    max_waiting_jobs: _Positive = 1000
    """Jobs of one user accepted and waiting for a turn; a job past it is refused."""
    dispatch_window: _Positive = 2
    """Jobs of one user on the tier topic not yet started. Each user's backlog enters the
    queue a few jobs at a time, so another user's job waits behind a few of them, not all."""
    queue_ttl_s: _Positive
    output_retention_days: _Positive | None = None
    """Days a finished job's outputs are kept; then they are removed from storage and the
    job shows its outputs without download links. ``None``: kept until the job is deleted."""


class Price(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    credits: Annotated[int, Field(ge=0)]
    per: Literal["job", "second", "minute", "character"]
    unit: _Positive = 1
    """How many of ``per`` one charge of ``credits`` covers; started units count whole."""

    def of(self, quantity: float = 1) -> int:
        """Credits for ``quantity`` of ``per`` (seconds, minutes, characters; 1 for a job)."""
        if quantity < 0:
            raise ValueError("quantity must not be negative")
        return self.credits * max(1, math.ceil(quantity / self.unit))


class Catalog(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    plans: dict[Plan, PlanLimits]
    prices: dict[JobType, Price]

    @model_validator(mode="after")
    def _complete(self) -> Catalog:
        missing = [p.value for p in Plan if p not in self.plans]
        missing += [t.value for t in JobType if t not in self.prices]
        if missing:
            raise ValueError(f"catalog lacks {', '.join(missing)}")
        return self

    def limits(self, plan: Plan) -> PlanLimits:
        return self.plans[plan]

    def price(self, job_type: JobType) -> Price:
        return self.prices[job_type]


CATALOG_ENV: Final = "GENSTREAM_CATALOG"
"""The one setting naming the plans and prices file every service uses (the API, the
processors, the projection, the tools): unset, the shipped one."""


def load_catalog(path: Path | None = None) -> Catalog:
    """The catalog at ``path``, else at ``GENSTREAM_CATALOG``, else the one shipped with
    genstream; read once per process and file."""
    if path is None:
        named = os.environ.get(CATALOG_ENV, "").strip()
        path = Path(named) if named else None
    return _catalog_at(None if path is None else str(path.resolve()))


@functools.cache
def _catalog_at(path: str | None) -> Catalog:
    if path is None:
        raw = resources.files("contracts").joinpath("catalog.toml").read_text(encoding="utf-8")
    else:
        raw = Path(path).read_text(encoding="utf-8")
    return Catalog.model_validate(tomllib.loads(raw))
