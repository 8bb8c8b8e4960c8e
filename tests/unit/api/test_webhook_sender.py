"""One delivery attempt against a receiver on loopback: signed, pinned, bounded."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from api.webhooks.sender import USER_AGENT, Outgoing, Sender
from api.webhooks.settings import WebhookSettings
from api.webhooks.signing import new_secret
from tests.unit.api.webhook_receiver import Answer, Receiver

SETTINGS = WebhookSettings(
    allow_loopback=True, connect_timeout_s=1.0, request_timeout_s=1.0, lease_s=10.0
)


def to_loopback(host: str, port: int, **_: Any) -> Sequence[tuple[Any, ...]]:
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]


def _verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return expected in headers["webhook-signature"].split(" ")


def test_signed_post_to_the_vetted_address_with_the_original_host() -> None:
    secret = new_secret()
    body = '{"type":"job.completed","data":{"job_id":"j","status":"completed"}}'
    with Receiver() as receiver:
        sender = Sender(settings=SETTINGS, https_only=False, resolver=to_loopback)
        url = f"http://hooks.test:{receiver.port}/in?source=genstream"
        attempt = sender.post(Outgoing(message_id="evt-1", url=url, body=body), secrets=[secret])
        [request] = receiver.wait_for(1)
    assert attempt.status_code == 200
    assert attempt.error is None
    assert request.path == "/in?source=genstream"
    assert request.headers["host"] == f"hooks.test:{receiver.port}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["webhook-id"] == "evt-1"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert request.body == body.encode()
    assert _verify(secret, request.headers, request.body)
    # The signature is the only credential that leaves.
    assert not {"authorization", "cookie", "proxy-authorization"} & set(request.headers)


def test_redirects_are_not_followed() -> None:
    with Receiver([Answer(status=302, headers={"Location": "/elsewhere"})]) as receiver:
        sender = Sender(settings=SETTINGS, https_only=False)
        attempt = sender.post(
            Outgoing(message_id="m", url=receiver.url(), body="{}"), secrets=[new_secret()]
        )
        assert attempt.status_code == 302
        assert [r.path for r in receiver.received] == ["/hook"]


def test_a_hung_endpoint_times_out_within_the_bound() -> None:
    with Receiver([Answer(hold=True)]) as receiver:
        sender = Sender(settings=SETTINGS, https_only=False)
        began = time.monotonic()
        attempt = sender.post(
            Outgoing(message_id="m", url=receiver.url(), body="{}"), secrets=[new_secret()]
        )
        assert time.monotonic() - began < 5
    assert attempt.status_code is None
    assert attempt.error == "timed out"
    assert not attempt.refused


def test_a_large_answer_is_read_only_up_to_the_cap() -> None:
    with Receiver([Answer(body=b"x" * (8 * 1024 * 1024))]) as receiver:
        settings = SETTINGS.model_copy(update={"max_response_bytes": 1024})
        attempt = Sender(settings=settings, https_only=False).post(
            Outgoing(message_id="m", url=receiver.url(), body="{}"), secrets=[new_secret()]
        )
    assert attempt.status_code == 200


def test_retry_after_of_a_throttled_answer_is_kept() -> None:
    with Receiver([Answer(status=429, headers={"Retry-After": "30"})]) as receiver:
        attempt = Sender(settings=SETTINGS, https_only=False).post(
            Outgoing(message_id="m", url=receiver.url(), body="{}"), secrets=[new_secret()]
        )
    assert (attempt.status_code, attempt.retry_after_s, attempt.error) == (429, 30.0, "HTTP 4xx")


def test_loopback_is_refused_unless_allowed_and_nothing_is_sent() -> None:
    with Receiver() as receiver:
        settings = SETTINGS.model_copy(update={"allow_loopback": False})
        attempt = Sender(settings=settings, https_only=False).post(
            Outgoing(message_id="m", url=receiver.url(), body="{}"), secrets=[new_secret()]
        )
        assert attempt.refused
        assert attempt.status_code is None
        assert receiver.received == []


def test_plain_http_is_refused_where_https_is_required() -> None:
    attempt = Sender(settings=SETTINGS, https_only=True, resolver=to_loopback).post(
        Outgoing(message_id="m", url="http://hooks.test/x", body="{}"), secrets=[new_secret()]
    )
    assert attempt.refused


def _closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _hanging_up() -> Iterator[int]:
    """A loopback port whose listener takes each connection and closes it unanswered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            connection.recv(65536)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _post(url: str, *, settings: WebhookSettings = SETTINGS) -> Any:
    return Sender(settings=settings, https_only=False, resolver=to_loopback).post(
        Outgoing(message_id="m", url=url, body="{}"), secrets=[new_secret()]
    )


@pytest.mark.parametrize(("status", "shown"), [(405, "HTTP 4xx"), (503, "HTTP 5xx")])
def test_what_the_owner_is_told_of_an_answer_is_its_class(status: int, shown: str) -> None:
    with Receiver([Answer(status=status, body=b"Method Not Allowed by nginx")]) as receiver:
        attempt = _post(receiver.url())
    assert (attempt.status_code, attempt.error) == (status, shown)
    assert attempt.detail == f"HTTP {status}"


def test_a_refused_connection_and_a_hang_up_look_the_same_to_the_owner() -> None:
    refused = _post(f"http://hooks.test:{_closed_port()}/hook")
    with _hanging_up() as port:
        hung_up = _post(f"http://hooks.test:{port}/hook")
    assert refused.error == hung_up.error == "connection failed"
    assert (refused.status_code, hung_up.status_code) == (None, None)
    # Operators' logs keep what happened.
    assert refused.detail is not None
    assert "ConnectError" in refused.detail
    assert hung_up.detail is not None
    assert "RemoteProtocolError" in hung_up.detail


def test_a_refused_destination_is_not_named_to_the_owner() -> None:
    settings = SETTINGS.model_copy(update={"allow_loopback": False})
    attempt = _post("http://intranet.test/hook", settings=settings)
    assert attempt.refused
    assert attempt.error == "destination not allowed"
    assert attempt.detail is not None
    assert "127.0.0.1" in attempt.detail


def test_an_unresolved_host_is_not_described_to_the_owner() -> None:
    def nowhere(host: str, port: int, **_: Any) -> Sequence[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    attempt = Sender(settings=SETTINGS, https_only=False, resolver=nowhere).post(
        Outgoing(message_id="m", url="http://intranet.test/hook", body="{}"),
        secrets=[new_secret()],
    )
    assert (attempt.error, attempt.refused) == ("host did not resolve", False)
    assert attempt.detail is not None
    assert "intranet.test" in attempt.detail
