"""What the API measured of an upload, kept as user metadata on its checked copy.

The worker reads the measurements with the bytes, in the same response, and bounds what it
decodes by them before decoding: no event has to carry them, and they cannot disagree with
the object they describe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from pydantic import ValidationError

from contracts import MediaInfo
from genstream.storage.client import S3Client

__all__ = ["checked_media", "checked_metadata", "seal"]

_SOURCE_ETAG: Final = "source-etag"


def checked_metadata(media: MediaInfo, *, source_etag: str) -> dict[str, str]:
    """The user metadata of a checked copy (S3 lower-cases and prefixes the names)."""
    meta = {"size": str(media.size), _SOURCE_ETAG: source_etag.strip('"')}
    if media.width is not None and media.height is not None:
        meta |= {"width": str(media.width), "height": str(media.height)}
    if media.duration_s is not None:
        meta["duration-s"] = repr(media.duration_s)
    return meta


def checked_media(content_type: str, metadata: Mapping[str, str]) -> MediaInfo | None:
    """The measurements ``checked_metadata`` wrote, or None where they are missing or bad."""
    try:
        return MediaInfo(
            content_type=content_type,
            size=int(metadata["size"]),
            width=int(metadata["width"]) if "width" in metadata else None,
            height=int(metadata["height"]) if "height" in metadata else None,
            duration_s=float(metadata["duration-s"]) if "duration-s" in metadata else None,
        )
    except (KeyError, ValueError, ValidationError):
        return None


async def seal(
    client: S3Client,
    *,
    bucket: str,
    source_key: str,
    source_etag: str,
    checked_key: str,
    media: MediaInfo,
) -> None:
    """Copies the object at ``source_key`` to ``checked_key`` with ``media`` as its metadata.

    The store refuses the copy (412) unless the source is still the version ``source_etag``
    names: what is sealed is exactly what was measured.
    """
    await client.copy_object(
        Bucket=bucket,
        Key=checked_key,
        CopySource={"Bucket": bucket, "Key": source_key},
        CopySourceIfMatch=source_etag,
        MetadataDirective="REPLACE",
        ContentType=media.content_type,
        Metadata=checked_metadata(media, source_etag=source_etag),
    )
