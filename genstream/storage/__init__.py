"""The S3-compatible object store for uploads and outputs."""

from genstream.storage.client import (
    S3Client,
    ensure_buckets,
    presign_get,
    presign_put,
    s3_client,
)
from genstream.storage.config import S3Settings

__all__ = ["S3Client", "S3Settings", "ensure_buckets", "presign_get", "presign_put", "s3_client"]
