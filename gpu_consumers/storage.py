"""The worker's object store: blocking S3 calls, made from the job's own thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from genstream.storage import S3Settings
from gpu_consumers.pipelines.base import PermanentError, TransientError

__all__ = ["ObjectStore", "output_key", "upload_key"]


def upload_key(user_id: str, upload_id: str) -> str:
    return f"uploads/{user_id}/{upload_id}"


def output_key(user_id: str, job_id: str, name: str) -> str:
    return f"outputs/{user_id}/{job_id}/{name}"


class ObjectStore:
    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        session = botocore.session.get_session()
        self._client: Any = session.create_client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            aws_access_key_id=settings.access_key.get_secret_value(),
            aws_secret_access_key=settings.secret_key.get_secret_value(),
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=120,
            ),
        )

    def download_upload(self, user_id: str, upload_id: str, destination: Path) -> Path:
        """Fetches a user's upload; a missing one is permanent, a failing store transient."""
        key = upload_key(user_id, upload_id)
        try:
            response = self._client.get_object(Bucket=self.settings.uploads_bucket, Key=key)
            with destination.open("wb") as file, response["Body"] as body:
                for chunk in iter(lambda: body.read(1 << 20), b""):
                    file.write(chunk)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"404", "NoSuchKey", "403", "AccessDenied"}:
                raise PermanentError(f"the upload {upload_id} cannot be read ({code})") from exc
            raise TransientError(f"reading the upload {upload_id} failed: {code}") from exc
        except BotoCoreError as exc:
            raise TransientError(f"reading the upload {upload_id} failed: {exc}") from exc
        return destination

    def put_output(self, key: str, data: bytes, content_type: str) -> None:
        try:
            self._client.put_object(
                Bucket=self.settings.outputs_bucket, Key=key, Body=data, ContentType=content_type
            )
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(f"storing {key} failed: {exc}") from exc

    def close(self) -> None:
        self._client.close()
