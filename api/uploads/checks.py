"""An upload checked against its declaration, and sealed, before a job may use it.

The object is read back from the store: its size, its first bytes, and what Pillow or PyAV
make of it. What passed is then copied, on condition that it is still the object that was
read (``CopySourceIfMatch``), to a checked key that no client can write, with the
measurements as its metadata; workers read only that copy. The verdict is kept on the upload
row, so the next job using the same file pays only for a HEAD request of the copy. A check
holds the upload's row lock, so two jobs using one upload cannot seal two different files.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.ext.asyncio import AsyncSession

from api.problems import Problem, not_found
from api.settings import ApiSettings, UploadsSettings
from api.uploads.probe import (
    SNIFF_BYTES,
    Measured,
    MediaKind,
    UploadRefusedError,
    check_magic,
    check_size,
    kind_of,
    max_bytes_for,
    measure_image,
    measure_video,
)
from contracts import MediaInfo
from genstream.db.models import Upload
from genstream.storage import S3Client, checked_upload_key, s3_client, seal

__all__ = ["upload_refused", "usable_upload"]

_CHUNK_BYTES: Final = 1024 * 1024
_ERROR_CHARS: Final = 500


@dataclass(frozen=True, slots=True)
class _Stored:
    size: int
    etag: str
    content_type: str | None


def upload_refused(upload_id: str, reason: str) -> Problem:
    return Problem(
        422,
        f"upload {upload_id} cannot be used: {reason}",
        type_="upload_invalid",
        title="Upload refused",
        upload_id=upload_id,
    )


def _storage_unavailable() -> Problem:
    return Problem(503, "the file store is unavailable; try again", headers={"Retry-After": "5"})


async def usable_upload(
    session: AsyncSession,
    *,
    settings: ApiSettings,
    user_id: uuid.UUID,
    upload_id: str,
    kind: MediaKind,
) -> MediaInfo:
    """The measurements of the user's upload, checking and sealing the file when that is due.

    Answers 404 for an upload that is not the user's, and 422 (``upload_invalid``) for one
    that is missing, of the wrong kind, or refused by the check; a refused file stays refused,
    and a sealed one stays what it was when it was sealed, whatever is PUT to its URL later.
    The row stays locked until ``session`` ends its transaction, as a raised problem does.
    """
    upload = await session.get(Upload, upload_id, with_for_update=True)
    if upload is None or upload.user_id != user_id:
        raise not_found("upload")
    if upload.status == "invalid":
        raise upload_refused(upload_id, upload.error or "the file was refused")
    if kind_of(upload.content_type) != kind:
        raise upload_refused(upload_id, f"it is {upload.content_type}; this job takes an {kind}")
    bucket = settings.s3.uploads_bucket
    sealed_key = checked_upload_key(str(user_id), upload_id)
    try:
        async with s3_client(settings.s3) as client:
            if (
                upload.status == "ready"
                and upload.media
                and await _head(client, bucket=bucket, key=sealed_key) is not None
            ):
                sealed = MediaInfo.model_validate(upload.media)
                await session.rollback()
                return sealed
            stored = await _head(client, bucket=bucket, key=upload.key)
            if stored is None:
                raise upload_refused(upload_id, "nothing has been uploaded yet")
            try:
                measured = await _inspect(client, bucket, upload, stored, settings.uploads)
            except UploadRefusedError as error:
                upload.status = "invalid"
                upload.error = str(error)[:_ERROR_CHARS]
                upload.media = None
                upload.etag = stored.etag
                await session.commit()
                raise upload_refused(upload_id, upload.error) from None
            media = MediaInfo(
                content_type=upload.content_type,
                size=stored.size,
                duration_s=measured.duration_s,
                width=measured.width,
                height=measured.height,
            )
            await seal(
                client,
                bucket=bucket,
                source_key=upload.key,
                source_etag=stored.etag,
                checked_key=sealed_key,
                media=media,
            )
    except (BotoCoreError, ClientError) as error:
        if isinstance(error, ClientError) and _code(error) in {"412", "PreconditionFailed"}:
            raise Problem(409, "the upload changed while it was being checked; try again") from None
        raise _storage_unavailable() from None
    upload.status = "ready"
    upload.media = media.model_dump(mode="json")
    upload.etag = stored.etag
    upload.error = None
    await session.commit()
    return media


def _code(error: ClientError) -> str:
    response: dict[str, Any] = error.response
    return str(response.get("Error", {}).get("Code", ""))


async def _head(client: S3Client, *, bucket: str, key: str) -> _Stored | None:
    try:
        head: dict[str, Any] = await client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if _code(error) in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise
    return _Stored(
        size=int(head["ContentLength"]),
        etag=str(head["ETag"]),
        content_type=head.get("ContentType"),
    )


async def _inspect(
    client: S3Client, bucket: str, upload: Upload, stored: _Stored, limits: UploadsSettings
) -> Measured:
    limit = max_bytes_for(
        upload.content_type,
        max_image_bytes=limits.max_image_bytes,
        max_video_bytes=limits.max_video_bytes,
    )
    check_size(declared=upload.size, stored=stored.size, limit=limit)
    if stored.content_type != upload.content_type:
        raise UploadRefusedError(
            f"the file was stored as {stored.content_type}, not {upload.content_type}"
        )
    # IfMatch: what is read is the very object whose size was just checked.
    response = await client.get_object(Bucket=bucket, Key=upload.key, IfMatch=stored.etag)
    async with response["Body"] as body:
        chunks = _bounded(
            body.iter_chunks(_CHUNK_BYTES), content_type=upload.content_type, limit=upload.size
        )
        if kind_of(upload.content_type) == "image":
            data = b"".join([chunk async for chunk in chunks])
            return await asyncio.to_thread(
                measure_image,
                upload.content_type,
                data,
                max_dimension=limits.max_dimension,
                max_pixels=limits.max_image_pixels,
            )
        with tempfile.TemporaryDirectory(prefix="genstream-upload-") as workdir:
            path = Path(workdir) / "video"
            file = await asyncio.to_thread(path.open, "wb")
            try:
                async for chunk in chunks:
                    await asyncio.to_thread(file.write, chunk)
            finally:
                await asyncio.to_thread(file.close)
            return await asyncio.to_thread(
                measure_video, upload.content_type, path, max_dimension=limits.max_dimension
            )


async def _bounded(
    chunks: AsyncIterator[bytes], *, content_type: str, limit: int
) -> AsyncIterator[bytes]:
    """The object's bytes, refused as soon as its signature or its size is wrong."""
    total = 0
    sniffed = b""
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise UploadRefusedError(f"the file has more than the declared {limit} bytes")
        if len(sniffed) < SNIFF_BYTES:
            sniffed += chunk[: SNIFF_BYTES - len(sniffed)]
            if len(sniffed) == SNIFF_BYTES:
                check_magic(content_type, sniffed)
        yield chunk
    if len(sniffed) < SNIFF_BYTES:
        check_magic(content_type, sniffed)
