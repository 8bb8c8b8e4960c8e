"""``DELETE /v1/jobs/{id}``: a finished job's files go from storage, and the job from view.

Its outputs and previews (everything under its output prefix) are removed, and so are its
input uploads (the client's upload and the checked copy) unless another job of the user's
that is not deleted names them; an upload removed this way is refused to later jobs. Then
the row is marked ``deleted_at``: every read of the owner's answers as for a job that never
was, while the row stays, so that a retried submission with its ``Idempotency-Key`` still
finds it rather than making a new job. Files go first: a deletion cut short leaves the job
visible, and repeating it finishes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.jobs.downloads import output_prefix
from api.jobs.validation import uploads_of
from api.problems import Problem
from api.settings import ApiSettings
from contracts import TERMINAL_STATUSES, input_model_for
from genstream.db.models import Job, Upload
from genstream.storage import S3Client, s3_client
from genstream.storage.keys import checked_upload_key

__all__ = ["delete_job", "remove_prefix"]

_ENDED: Final = frozenset(status.value for status in TERMINAL_STATUSES)
_BATCH: Final = 1000
"""Keys one ``DeleteObjects`` request may name."""


async def remove_prefix(client: S3Client, bucket: str, prefix: str) -> int:
    """Deletes every object under ``prefix``; returns how many there were."""
    removed = 0
    paginator = client.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        for start in range(0, len(keys), _BATCH):
            await client.delete_objects(
                Bucket=bucket, Delete={"Objects": keys[start : start + _BATCH], "Quiet": True}
            )
        removed += len(keys)
    return removed


async def _unshared_uploads(session: AsyncSession, job: Job) -> list[Upload]:
    """The job's input uploads that no other live job of the user's names."""
    ids = [use.upload_id for use in uploads_of(input_model_for(job.type).model_validate(job.input))]
    if not ids:
        return []
    named = or_(Job.input["upload_id"].astext.in_(ids), Job.input["mask_upload_id"].astext.in_(ids))
    others = await session.scalars(
        select(Job.input).where(
            Job.user_id == job.user_id, Job.id != job.id, Job.deleted_at.is_(None), named
        )
    )
    shared = {value for other in others for value in _named_uploads(other)}
    rows = await session.scalars(
        select(Upload).where(Upload.id.in_([i for i in ids if i not in shared]))
    )
    return [row for row in rows if row.user_id == job.user_id]


def _named_uploads(job_input: dict[str, Any]) -> Sequence[str]:
    return [job_input[name] for name in ("upload_id", "mask_upload_id") if job_input.get(name)]


async def delete_job(session: AsyncSession, settings: ApiSettings, job: Job) -> None:
    """Removes the finished ``job``'s files and hides it; 409 while it has not ended."""
    if job.status not in _ENDED:
        raise Problem(
            409,
            f"the job is {job.status}: cancel it, then delete it once it has ended",
            type_="job_not_finished",
        )
    uploads = await _unshared_uploads(session, job)
    user_id = str(job.user_id)
    try:
        async with s3_client(settings.s3) as client:
            await remove_prefix(client, settings.s3.outputs_bucket, output_prefix(user_id, job.id))
            for upload in uploads:
                keys = [upload.key, checked_upload_key(user_id, upload.id)]
                await client.delete_objects(
                    Bucket=settings.s3.uploads_bucket,
                    Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
                )
    except (BotoCoreError, ClientError):
        raise Problem(
            503,
            "the job's files could not be removed now; try again",
            type_="unavailable",
            headers={"Retry-After": "5"},
        ) from None
    for upload in uploads:
        upload.status = "invalid"
        upload.error = f"removed with its job {job.id}"
        upload.media = None
    job.deleted_at = datetime.now(UTC)
    await session.commit()
