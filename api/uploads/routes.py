"""``POST /v1/uploads``: a presigned URL to put one file straight into the object store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from botocore.exceptions import BotoCoreError
from fastapi import APIRouter, status

from api.auth.principal import CurrentUser
from api.deps import RateLimiterDep, SessionDep, SettingsDep
from api.problems import Problem, problem_responses
from api.uploads.probe import UploadRefusedError, max_bytes_for
from api.uploads.schemas import UploadCreate, UploadCreated
from genstream.db.models import Upload
from genstream.storage import presign_put, s3_client, upload_key

router = APIRouter(prefix="/v1", tags=["uploads"])


def _upload_id() -> str:
    return f"upl_{uuid.uuid4().hex}"


@router.post(
    "/uploads",
    operation_id="uploads_create",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadCreated,
    summary="Start an upload: returns a URL to PUT the file to",
    responses=problem_responses(
        400,
        401,
        413,
        503,
        described={
            422: "Content type not accepted or file too large",
            429: "Too many uploads started in the window; see `Retry-After`",
        },
    ),
)
async def create_upload(
    body: UploadCreate,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    limiter: RateLimiterDep,
) -> UploadCreated:
    await limiter.hit(
        f"uploads:user:{user.id}",
        limit=settings.uploads.per_user,
        window_s=settings.uploads.per_user_window_s,
    )
    try:
        limit = max_bytes_for(
            body.content_type,
            max_image_bytes=settings.uploads.max_image_bytes,
            max_video_bytes=settings.uploads.max_video_bytes,
        )
    except UploadRefusedError as error:
        raise Problem(422, str(error), type_="upload_invalid", title="Upload refused") from None
    if body.size > limit:
        raise Problem(
            422,
            f"{body.content_type} files may have at most {limit} bytes, not {body.size}",
            type_="upload_invalid",
            title="Upload refused",
        )
    upload_id = _upload_id()
    key = upload_key(str(user.id), upload_id)
    ttl_s = settings.uploads.url_ttl_s
    # Taken before signing, so the URL never outlives the time the client is told.
    expires_at = datetime.now(UTC) + timedelta(seconds=ttl_s)
    try:
        async with s3_client(settings.s3, for_clients=True) as client:
            url = await presign_put(
                client,
                bucket=settings.s3.uploads_bucket,
                key=key,
                content_type=body.content_type,
                ttl_s=ttl_s,
                # Signed, so the store itself refuses a file larger than declared and checked.
                content_length=body.size,
                # Single use: the object, once created, can never be replaced through it.
                once=True,
            )
    except BotoCoreError:
        raise Problem(503, "the file store is unavailable; try again") from None
    session.add(
        Upload(
            id=upload_id,
            user_id=user.id,
            key=key,
            content_type=body.content_type,
            size=body.size,
            status="pending",
            expires_at=expires_at,
        )
    )
    await session.commit()
    return UploadCreated(
        id=upload_id,
        upload_url=url,
        headers={"Content-Type": body.content_type, "If-None-Match": "*"},
        expires_at=expires_at,
    )
