"""Whose address the auth limits count, through ``genstream-api`` itself on a loopback port.

The server is the real entry point in a process of its own (uvicorn as it is configured in
production), on the test's own schema: a client address rewritten by the server before the
app sees it would go unnoticed through an in-process transport.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import Engine

from api.settings import ApiSettings
from tests.integration.api.accounts import PASSWORD
from tests.polling import poll_until

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _genstream_api(
    api_settings: ApiSettings, schema: str, log: Path, **env: str
) -> Iterator[httpx.Client]:
    """``genstream-api`` with two sign-ups per address an hour; a client of it."""
    port = _free_port()
    environment = {
        **os.environ,
        # libpq's own way to name the schema: the entry point is run as it ships.
        "PGOPTIONS": f"-csearch_path={schema}",
        "GENSTREAM_ENVIRONMENT": "test",
        "GENSTREAM_LOG_LEVEL": "WARNING",
        "GENSTREAM_AUTH__JWT_SECRET": api_settings.auth.jwt_secret.get_secret_value(),
        "GENSTREAM_API__HOST": "127.0.0.1",
        "GENSTREAM_API__PORT": str(port),
        "GENSTREAM_RATE_LIMITS__AUTH_PER_IP": "2",
        "GENSTREAM_RATE_LIMITS__WINDOW_S": "3600",
        **env,
    }
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", "from api.main import main; main()"],
            cwd=ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            def healthy() -> bool:
                assert process.poll() is None, log.read_text()
                try:
                    return client.get("/healthz", timeout=1).status_code == 200
                except httpx.TransportError:
                    return False

            poll_until(healthy, timeout_s=60, what=lambda: f"genstream-api:\n{log.read_text()}")
            yield client
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _sign_up(client: httpx.Client, forwarded_for: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    body = {"email": f"xff-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD}
    return client.post("/v1/auth/register", json=body, headers=headers)


def _accepted(response: httpx.Response) -> bool:
    return response.is_success


def test_a_spoofed_forwarded_for_does_not_lift_the_limit(
    api_settings: ApiSettings, pg_schema: tuple[Engine, str], tmp_path: Path
) -> None:
    with _genstream_api(api_settings, pg_schema[1], tmp_path / "api.log") as api:
        assert all(_accepted(_sign_up(api)) for _ in range(2))
        assert _sign_up(api).status_code == 429
        spoofed = [_sign_up(api, f"203.0.113.{n}") for n in range(1, 6)]
        assert [answer.status_code for answer in spoofed] == [429] * 5
        assert _sign_up(api, "203.0.113.9, 198.51.100.1").status_code == 429


def test_a_trusted_proxys_forwarded_for_names_the_client(
    api_settings: ApiSettings, pg_schema: tuple[Engine, str], tmp_path: Path
) -> None:
    trusted = {"GENSTREAM_API__TRUSTED_PROXIES": json.dumps(["127.0.0.1"])}
    with _genstream_api(api_settings, pg_schema[1], tmp_path / "api.log", **trusted) as api:
        assert all(_accepted(_sign_up(api, "203.0.113.1")) for _ in range(2))
        assert _sign_up(api, "203.0.113.1").status_code == 429
        # Another client behind the same proxy has an allowance of its own.
        assert _accepted(_sign_up(api, "203.0.113.2"))
        # A client that writes its own X-Forwarded-For is still known by the address the
        # proxy appended: the last one not of a trusted proxy.
        assert _sign_up(api, "198.51.100.7, 203.0.113.1").status_code == 429
        assert _sign_up(api, "203.0.113.1, 127.0.0.1").status_code == 429
