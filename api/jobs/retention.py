"""Outputs kept as long as the owner's plan says (``output_retention_days``), then removed.

A sweep finds finished jobs, not deleted, whose outputs are older than their owner's plan
keeps them, removes everything under each one's output prefix and marks it
``outputs_expired_at``; the job stays, listing its outputs without download links. The plan
that counts is the owner's now: moving to a plan that keeps outputs longer keeps them longer.
Run it on a schedule: ``python -m api.jobs.retention`` sweeps once and exits.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.jobs.deletion import remove_prefix
from api.jobs.downloads import output_prefix
from api.settings import ApiSettings
from contracts import Catalog, load_catalog
from genstream.db import async_engine
from genstream.db.models import Job, User
from genstream.logs import configure_logging
from genstream.storage import s3_client

__all__ = ["sweep"]

_log = logging.getLogger(__name__)


async def sweep(
    sessions: async_sessionmaker[AsyncSession],
    settings: ApiSettings,
    *,
    now: datetime,
    catalog: Catalog | None = None,
    batch: int = 500,
) -> int:
    """Removes the outputs their plans no longer keep; returns how many jobs lost theirs."""
    catalog = catalog or load_catalog()
    swept = 0
    async with s3_client(settings.s3) as client:
        for plan, limits in catalog.plans.items():
            if limits.output_retention_days is None:
                continue
            cutoff = now - timedelta(days=limits.output_retention_days)
            while True:
                async with sessions() as session:
                    due = (
                        await session.execute(
                            select(Job.id, Job.user_id)
                            .join(User, User.id == Job.user_id)
                            .where(
                                User.plan == plan.value,
                                Job.finished_at < cutoff,
                                Job.outputs_expired_at.is_(None),
                                Job.deleted_at.is_(None),
                            )
                            .order_by(Job.finished_at)
                            .limit(batch)
                        )
                    ).all()
                if not due:
                    break
                for job_id, user_id in due:
                    await remove_prefix(
                        client, settings.s3.outputs_bucket, output_prefix(str(user_id), job_id)
                    )
                async with sessions() as session, session.begin():
                    await session.execute(
                        update(Job)
                        .where(Job.id.in_([job_id for job_id, _ in due]))
                        .values(outputs_expired_at=now)
                    )
                swept += len(due)
                _log.info(
                    "outputs past retention removed", extra={"plan": plan.value, "jobs": len(due)}
                )
    return swept


async def _main() -> int:
    settings = ApiSettings()
    configure_logging("retention", settings.log_level)
    engine = async_engine(settings.pg)
    try:
        swept = await sweep(
            async_sessionmaker(engine, expire_on_commit=False), settings, now=datetime.now(UTC)
        )
    finally:
        await engine.dispose()
    _log.info("retention sweep done", extra={"jobs": swept})
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(_main()))
