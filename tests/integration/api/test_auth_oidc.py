"""OIDC sign-in against keys served by a real HTTP server on the loopback interface."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from api.auth.oidc import JwksCache
from api.settings import ApiSettings, OidcSettings
from genstream.db.models import OutboxMessage
from tests.integration.api.accounts import app_client, bearer, login, register

AUDIENCE = "genstream-test-client"


@dataclass
class Provider:
    """A stand-in identity provider: its issuer URL, signing keys and key-set requests."""

    issuer: str
    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    published: list[dict[str, Any]] = field(default_factory=list)
    jwks_requests: int = 0

    def add_key(self, kid: str, *, publish: bool = True) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys[kid] = key
        if publish:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            self.published.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})

    def id_token(self, kid: str = "key-1", **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "subject-1",
            "iat": now,
            "exp": now + 300,
            "email": "Oidc.User@Example.com",
            "email_verified": True,
        }
        claims.update(overrides)
        claims = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(claims, self.keys[kid], algorithm="RS256", headers={"kid": kid})


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/.well-known/jwks.json":
                self.send_error(404)
                return
            provider.jwks_requests += 1
            body = json.dumps({"keys": provider.published}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def provider() -> Iterator[Provider]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    host, port = server.server_address[:2]
    state = Provider(issuer=f"http://{host!s}:{port}")
    state.add_key("key-1")
    server.RequestHandlerClass = _handler(state)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _oidc_settings(api_settings: ApiSettings, issuer: str) -> ApiSettings:
    return api_settings.model_copy(
        update={"oidc": OidcSettings(issuer=issuer, audience=AUDIENCE, algorithms=("RS256",))}
    )


@pytest.fixture
async def oidc_api(
    api_settings: ApiSettings, api_engine: AsyncEngine, provider: Provider
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_oidc_settings(api_settings, provider.issuer), engine=api_engine)
    async with app_client(app) as client:
        yield client


async def _sign_in(api: httpx.AsyncClient, id_token: str) -> httpx.Response:
    return await api.post("/v1/auth/oidc", json={"id_token": id_token})


async def _grants(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return (
            await connection.execute(select(func.count()).select_from(OutboxMessage))
        ).scalar_one()


async def test_first_sign_in_creates_the_user_and_the_next_finds_it(
    oidc_api: httpx.AsyncClient, provider: Provider, api_engine: AsyncEngine
) -> None:
    first = await _sign_in(oidc_api, provider.id_token())
    assert first.status_code == 200, first.text
    assert first.json()["token_type"] == "bearer"
    me = (await oidc_api.get("/v1/me", headers=bearer(first.json()["access_token"]))).json()
    assert me["email"] == "oidc.user@example.com"
    assert me["plan"] == "FREE"

    # The email may change at the provider; the subject is what identifies the user.
    second = await _sign_in(oidc_api, provider.id_token(email="renamed@example.com"))
    assert second.status_code == 200
    again = (await oidc_api.get("/v1/me", headers=bearer(second.json()["access_token"]))).json()
    assert again == me

    assert await _grants(api_engine) == 1
    assert provider.jwks_requests == 1

    refreshed = await oidc_api.post(
        "/v1/auth/refresh", json={"refresh_token": second.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200


async def test_verified_email_links_an_existing_account(
    oidc_api: httpx.AsyncClient, provider: Provider
) -> None:
    user = await register(oidc_api, email="oidc.user@example.com")

    response = await _sign_in(oidc_api, provider.id_token())
    assert response.status_code == 200
    me = (await oidc_api.get("/v1/me", headers=bearer(response.json()["access_token"]))).json()
    assert me["id"] == user["id"]
    await login(oidc_api, user["email"])


async def test_unverified_email_neither_links_nor_creates(
    oidc_api: httpx.AsyncClient, provider: Provider
) -> None:
    await register(oidc_api, email="oidc.user@example.com")

    response = await _sign_in(oidc_api, provider.id_token(email_verified=False))
    assert response.status_code == 403
    missing = await _sign_in(oidc_api, provider.id_token(sub="subject-2", email=None))
    assert missing.status_code == 403


async def test_a_linked_email_is_not_taken_over_by_another_subject(
    oidc_api: httpx.AsyncClient, provider: Provider
) -> None:
    assert (await _sign_in(oidc_api, provider.id_token())).status_code == 200
    response = await _sign_in(oidc_api, provider.id_token(sub="subject-2"))
    assert response.status_code == 409


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "someone-elses-client"},
        {"iss": "https://evil.example"},
        {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
        {"iat": None},
        {"sub": None},
        {"aud": None},
    ],
    ids=["audience", "issuer", "expired", "no-iat", "no-sub", "no-aud"],
)
async def test_invalid_id_tokens_are_refused(
    oidc_api: httpx.AsyncClient, provider: Provider, overrides: dict[str, Any]
) -> None:
    response = await _sign_in(oidc_api, provider.id_token(**overrides))
    assert response.status_code == 401


async def test_unknown_and_forged_keys_are_refused(
    oidc_api: httpx.AsyncClient, provider: Provider
) -> None:
    provider.add_key("unpublished", publish=False)
    assert (await _sign_in(oidc_api, provider.id_token(kid="unpublished"))).status_code == 401

    # Signed with an unpublished key, claiming a published key's id.
    forged = jwt.encode(
        jwt.decode(provider.id_token(), options={"verify_signature": False}),
        provider.keys["unpublished"],
        algorithm="RS256",
        headers={"kid": "key-1"},
    )
    assert (await _sign_in(oidc_api, forged)).status_code == 401
    assert (await _sign_in(oidc_api, "not.a.jwt")).status_code == 401
    # Unknown key ids do not send each request to the provider.
    assert (await _sign_in(oidc_api, provider.id_token(kid="unpublished"))).status_code == 401
    assert provider.jwks_requests == 1


async def test_a_new_signing_key_is_fetched_on_first_sight(
    api_settings: ApiSettings, api_engine: AsyncEngine, provider: Provider
) -> None:
    app = create_app(_oidc_settings(api_settings, provider.issuer), engine=api_engine)
    app.state.oidc_jwks = JwksCache(
        url=f"{provider.issuer}/.well-known/jwks.json", max_age_s=600, min_refetch_s=0
    )
    async with app_client(app) as api:
        assert (await _sign_in(api, provider.id_token())).status_code == 200
        provider.add_key("key-2")
        assert (await _sign_in(api, provider.id_token(kid="key-2"))).status_code == 200
        assert provider.jwks_requests == 2
        provider.add_key("key-3", publish=False)
        assert (await _sign_in(api, provider.id_token(kid="key-3"))).status_code == 401
        assert provider.jwks_requests == 3


async def test_unreachable_provider_is_unavailable_not_unauthorized(
    api_settings: ApiSettings, api_engine: AsyncEngine, provider: Provider
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings = _oidc_settings(api_settings, f"http://127.0.0.1:{closed_port}")
    async with app_client(create_app(settings, engine=api_engine)) as api:
        response = await _sign_in(api, provider.id_token())
    assert response.status_code == 503


async def test_oidc_is_off_without_an_issuer(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/auth/oidc", json={"id_token": str(uuid.uuid4())})
    assert response.status_code == 404
