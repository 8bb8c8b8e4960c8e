"""The worker's object store: blocking S3 calls, made from the job's own thread.

Outputs are stored with one signed PUT each over a keep-alive connection of the calling
thread (``genstream.storage.sigv4``); downloads go through botocore.
"""

from __future__ import annotations

import http.client
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from contracts import MediaInfo
from genstream.storage import S3Settings, checked_media, checked_upload_key
from genstream.storage.sigv4 import Credentials, object_path, payload_hash, signed_headers
from gpu_consumers.pipelines.base import PermanentError, TransientError

__all__ = ["ObjectStore", "output_key"]

_PUT_TIMEOUT_S = 120.0


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
        endpoint = urlsplit(settings.endpoint_url)
        if endpoint.scheme not in {"http", "https"} or not endpoint.hostname:
            raise ValueError(f"the object store endpoint {settings.endpoint_url!r} is not a URL")
        self._endpoint = endpoint
        self._base_path = endpoint.path.rstrip("/")
        self._credentials = Credentials(
            access_key=settings.access_key.get_secret_value(),
            secret_key=settings.secret_key.get_secret_value(),
            region=settings.region,
        )
        self._connections: dict[int, http.client.HTTPConnection] = {}
        """Each calling thread's connection, by thread id."""
        self._connections_lock = threading.Lock()

    def download_upload(
        self, user_id: str, upload_id: str, destination: Path
    ) -> tuple[Path, MediaInfo | None]:
        """Fetches the checked copy of a user's upload with what the API measured of it.

        Only the copy the API sealed is read, never the object clients PUT to. A missing one
        is permanent (the upload was never checked), a failing store transient; more bytes
        than were measured stop the download.
        """
        key = checked_upload_key(user_id, upload_id)
        try:
            response = self._client.get_object(Bucket=self.settings.uploads_bucket, Key=key)
            measured = checked_media(
                str(response.get("ContentType", "")), response.get("Metadata", {})
            )
            limit = measured.size if measured is not None else 0
            written = 0
            with destination.open("wb") as file, response["Body"] as body:
                for chunk in iter(lambda: body.read(1 << 20), b""):
                    written += len(chunk)
                    if written > limit:
                        raise PermanentError(f"upload {upload_id} is not the file that was checked")
                    file.write(chunk)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"404", "NoSuchKey", "403", "AccessDenied"}:
                raise PermanentError(
                    f"the upload {upload_id} cannot be read ({code}): it was not checked"
                ) from exc
            raise TransientError(f"reading the upload {upload_id} failed: {code}") from exc
        except BotoCoreError as exc:
            raise TransientError(f"reading the upload {upload_id} failed: {exc}") from exc
        return destination, measured

    def put_output(self, key: str, data: bytes, content_type: str) -> None:
        """Stores one output; a store that fails or refuses is transient (retried later)."""
        path = self._base_path + object_path(self.settings.outputs_bucket, key)
        headers = signed_headers(
            "PUT",
            host=self._endpoint.netloc,
            path=path,
            headers={"Content-Type": content_type, "Content-Length": str(len(data))},
            body_hash=payload_hash(data),
            credentials=self._credentials,
        )
        # A kept-alive connection the store has closed fails on first use: one more try on
        # a fresh one tells that apart from a store that is down.
        for attempt in (1, 2):
            connection = self._connection(fresh=attempt > 1)
            try:
                connection.request("PUT", path, body=data, headers=headers)
                response = connection.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                if attempt == 2:
                    raise TransientError(f"storing {key} failed: {exc}") from exc
                continue
            if response.status == 200:
                return
            raise TransientError(f"storing {key} failed: {response.status} {_s3_code(answer)}")

    def _connection(self, *, fresh: bool) -> http.client.HTTPConnection:
        thread = threading.get_ident()
        with self._connections_lock:
            connection = self._connections.get(thread)
        if connection is not None and not fresh:
            return connection
        if connection is not None:
            connection.close()
        kind = (
            http.client.HTTPSConnection
            if self._endpoint.scheme == "https"
            else http.client.HTTPConnection
        )
        connection = kind(
            self._endpoint.hostname or "", self._endpoint.port, timeout=_PUT_TIMEOUT_S
        )
        with self._connections_lock:
            self._connections[thread] = connection
        return connection

    def close(self) -> None:
        self._client.close()
        with self._connections_lock:
            for connection in self._connections.values():
                connection.close()
            self._connections.clear()


def _s3_code(answer: bytes) -> str:
    """The ``<Code>`` of an S3 error document, for the message; never its whole body."""
    text = answer[:2048].decode("utf-8", "replace")
    start, end = text.find("<Code>"), text.find("</Code>")
    return text[start + len("<Code>") : end][:100] if 0 <= start < end else "(no error code)"
