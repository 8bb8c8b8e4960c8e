"""The S3-compatible object store for uploads and outputs."""

from genstream.storage.checked import checked_media, checked_metadata, seal
from genstream.storage.client import (
    S3Client,
    ensure_buckets,
    presign_get,
    presign_put,
    s3_client,
)
from genstream.storage.config import S3Settings
from genstream.storage.keys import checked_upload_key, upload_key

__all__ = [
    "S3Client",
    "S3Settings",
    "checked_media",
    "checked_metadata",
    "checked_upload_key",
    "ensure_buckets",
    "presign_get",
    "presign_put",
    "s3_client",
    "seal",
    "upload_key",
]
