"""Who may reach what: every route of the app, called by one user about another's resources.

The matrix is read against the app's OpenAPI document, so a new route fails
``test_every_route_is_in_the_matrix`` until it has an entry. A route whose path names a
resource goes in ``OWNED`` and must answer a stranger 404, the very answer it gives for an id
that names nothing (not 403, which would tell the id exists; not 200). A route without one
goes in ``UNOWNED``, with the check that it answers for the caller alone, or why it has no
one's data to leak.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from pydantic import SecretStr
from sqlalchemy import Engine, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from api.app import create_app
from api.settings import ApiSettings
from contracts import TopicSpec
from genstream.db import sync_engine
from genstream.db.models import User as UserRow
from genstream.db.read_model import JobEventRow
from genstream.settings import StackSettings
from tests.integration.api.accounts import app_client, bearer, login, register
from tests.integration.api.lifecycle import Story, add_job, granted, project
from tests.integration.api.live import isolated_settings
from tests.integration.api.test_jobs_submit import event_producer

Route = tuple[str, str]


@dataclass(frozen=True, slots=True)
class User:
    id: str
    headers: dict[str, str]
    access_token: str


@dataclass(frozen=True, slots=True)
class World:
    """Alice owns things; Bob asks about them."""

    api: httpx.AsyncClient
    engine: Engine
    alice: User
    bob: User
    finished_job: str
    queued_job: str
    api_key: str
    """The id of an API key of Alice's."""


@dataclass(frozen=True, slots=True)
class Owned:
    """A route about one resource: how to name it, and what its owner gets."""

    resource: Callable[[World], str]
    owner_status: int
    owner_headers: Callable[[World], dict[str, str]] = lambda _: {}


def _after_the_end(world: World) -> dict[str, str]:
    """Resumes the finished job's stream after its last event: a finite answer (204)."""
    with Session(world.engine) as session:
        last = session.scalar(
            select(func.max(JobEventRow.seq)).where(JobEventRow.job_id == world.finished_job)
        )
    return {"Last-Event-ID": str(last)}


OWNED: Final[dict[Route, Owned]] = {
    ("GET", "/v1/jobs/{job_id}"): Owned(lambda w: w.finished_job, 200),
    ("POST", "/v1/jobs/{job_id}/cancel"): Owned(lambda w: w.queued_job, 202),
    ("GET", "/v1/jobs/{job_id}/events"): Owned(lambda w: w.finished_job, 204, _after_the_end),
    ("GET", "/v1/jobs/{job_id}/webhooks"): Owned(lambda w: w.finished_job, 200),
    # Its owner is told it has sent nothing to send again.
    ("POST", "/v1/jobs/{job_id}/webhooks/redeliver"): Owned(lambda w: w.finished_job, 409),
    # After the job's other routes: its owner's call deletes the job they read.
    ("DELETE", "/v1/jobs/{job_id}"): Owned(lambda w: w.finished_job, 204),
    ("DELETE", "/v1/api-keys/{key_id}"): Owned(lambda w: w.api_key, 204),
}
"""Every route with an id in its path."""

Check = Callable[[World], Awaitable[None]]


async def _me(world: World) -> None:
    me = await world.api.get("/v1/me", headers=world.bob.headers)
    assert me.json()["id"] == world.bob.id


async def _api_keys(world: World) -> None:
    created = await world.api.post("/v1/api-keys", json={"name": "b"}, headers=world.bob.headers)
    assert created.status_code == 201
    listed = (await world.api.get("/v1/api-keys", headers=world.bob.headers)).json()
    assert [key["id"] for key in listed["items"]] == [created.json()["id"]]


async def _credits(world: World) -> None:
    credits = (await world.api.get("/v1/credits", headers=world.bob.headers)).json()
    assert (credits["balance"], credits["reserved"]) == (7, 0)
    assert [entry["amount"] for entry in credits["ledger"]] == [7]


async def _jobs(world: World) -> None:
    own = add_job(world.engine, world.bob.id)
    listed = (await world.api.get("/v1/jobs", headers=world.bob.headers)).json()
    assert [job["id"] for job in listed["jobs"]] == [own]


async def _webhook_secret(world: World) -> None:
    alices = (await world.api.get("/v1/webhooks/secret", headers=world.alice.headers)).json()
    bobs = (await world.api.get("/v1/webhooks/secret", headers=world.bob.headers)).json()
    assert bobs["secret"] != alices["secret"]
    rotated = await world.api.post("/v1/webhooks/secret/rotate", headers=world.bob.headers)
    assert rotated.json()["secret"] not in (bobs["secret"], alices["secret"])
    again = (await world.api.get("/v1/webhooks/secret", headers=world.alice.headers)).json()
    assert again == alices


async def _admin_status(world: World) -> None:
    assert (await world.api.get("/v1/admin/status")).status_code == 401
    refused = await world.api.get("/v1/admin/status", headers=world.bob.headers)
    assert refused.status_code == 403, refused.text
    with Session(world.engine) as session, session.begin():
        session.execute(update(UserRow).where(UserRow.id == world.bob.id).values(role="admin"))
    served = await world.api.get("/v1/admin/status", headers=world.bob.headers)
    assert served.status_code == 200, served.text
    assert served.json()["reserved_credits"] >= 0
    # Alice is still no operator.
    assert (await world.api.get("/v1/admin/status", headers=world.alice.headers)).status_code == 403


async def _logout(world: World) -> None:
    assert (await world.api.post("/v1/auth/logout", headers=world.bob.headers)).status_code == 204
    assert (await world.api.get("/v1/me", headers=world.alice.headers)).status_code == 200


UNOWNED: Final[dict[Route, Check | str]] = {
    ("GET", "/healthz"): "a probe: no user data",
    ("GET", "/readyz"): "a probe: no user data",
    ("GET", "/v1/plans"): "the public catalog",
    ("POST", "/v1/auth/register"): "makes a new account",
    ("POST", "/v1/auth/token"): "the caller's own email and password are the credential",
    ("POST", "/v1/auth/refresh"): "the refresh token is the credential",
    ("POST", "/v1/auth/oidc"): "the identity provider's ID token is the credential",
    ("POST", "/v1/webhooks/payments"): "the payment provider's; its signature is the credential",
    ("POST", "/v1/auth/logout"): _logout,
    ("GET", "/v1/admin/status"): _admin_status,
    ("GET", "/v1/me"): _me,
    ("GET", "/v1/api-keys"): _api_keys,
    ("POST", "/v1/api-keys"): _api_keys,
    ("GET", "/v1/credits"): _credits,
    ("GET", "/v1/jobs"): _jobs,
    ("GET", "/v1/webhooks/secret"): _webhook_secret,
    ("POST", "/v1/webhooks/secret/rotate"): _webhook_secret,
    ("POST", "/v1/uploads"): "files go under the caller's own key prefix "
    "(test_uploads.py::test_a_png_goes_from_upload_to_the_jobs_event)",
    ("POST", "/v1/jobs"): "another user's upload id names nothing "
    "(test_uploads.py::test_someone_elses_upload_does_not_exist_for_the_caller)",
    ("GET", "/v1/events"): "carries the caller's jobs alone (test_job_events_sse.py::"
    "test_two_processes_each_stream_every_event_to_their_clients)",
}
"""Every route without an id in its path: a check run here, or why it needs none."""

OPERATORS: Final[dict[Route, dict[str, Any] | None]] = {
    ("GET", "/v1/admin/users"): None,
    ("PUT", "/v1/admin/users/{user_id}/plan"): {"plan": "PRO", "reason": "trial"},
    ("POST", "/v1/admin/users/{user_id}/credits"): {"amount": 5, "reason": "sorry"},
    ("POST", "/v1/admin/jobs/{job_id}/rerun"): None,
}
"""Operators' routes about any user or job: refused (403) to everyone but admins, whose id in
the path is another user's (or job's) by design. The body each is called with."""

OUTSIDE: Final[dict[Route, str]] = {
    ("GET", "/metrics"): "operators': a bearer token when one is set, off in production "
    "without one (test_metrics_need_their_token, test_production_serves_no_description)",
    ("GET", "/openapi.json"): "the API's description: off in production unless turned on "
    "(test_production_serves_no_description)",
    ("GET", "/docs"): "renders /openapi.json, and goes with it",
    ("GET", "/docs/oauth2-redirect"): "the docs' sign-in page, and goes with them",
    ("GET", "/redoc"): "renders /openapi.json, and goes with it",
}
"""Every route the OpenAPI document leaves out, and who may reach it."""


@pytest.fixture
def schema_engine(stack: StackSettings, pg_schema: tuple[Engine, str]) -> Iterator[Engine]:
    engine = sync_engine(stack.pg, schema=pg_schema[1])
    yield engine
    engine.dispose()


@pytest.fixture
async def world(
    api_settings: ApiSettings,
    api_engine: AsyncEngine,
    schema_engine: Engine,
    stack: StackSettings,
    make_topic: Callable[[str], TopicSpec],
) -> AsyncIterator[World]:
    settings = isolated_settings(api_settings, requested=make_topic("jobs.requested"))
    async with (
        event_producer(stack.kafka) as producer,
        app_client(create_app(settings, engine=api_engine, producer=producer)) as api,
    ):
        alice, bob = await _user(api), await _user(api)
        finished = Story(alice.id, add_job(schema_engine, alice.id))
        queued = Story(alice.id, add_job(schema_engine, alice.id))
        project(
            schema_engine,
            [
                granted(alice.id, 500), granted(bob.id, 7),
                finished.accepted(), finished.queued(), finished.started(), finished.completed(),
                queued.accepted(), queued.queued(),
            ],
        )  # fmt: skip
        key = await api.post("/v1/api-keys", json={"name": "a"}, headers=alice.headers)
        assert key.status_code == 201, key.text
        yield World(
            api, schema_engine, alice, bob, finished.job_id, queued.job_id, key.json()["id"]
        )


async def _user(api: httpx.AsyncClient) -> User:
    user = await register(api)
    token = (await login(api, user["email"]))["access_token"]
    return User(user["id"], bearer(token), token)


def _operations(document: dict[str, Any]) -> set[Route]:
    return {
        (method.upper(), path) for path, methods in document["paths"].items() for method in methods
    }


def test_every_route_is_in_the_matrix(api_app: FastAPI) -> None:
    documented = _operations(api_app.openapi())
    assert not OWNED.keys() & UNOWNED.keys()
    assert not OPERATORS.keys() & (OWNED.keys() | UNOWNED.keys())
    assert documented == OWNED.keys() | UNOWNED.keys() | OPERATORS.keys(), (
        "a route has no entry, or one is stale"
    )
    assert all(path.startswith("/v1/admin/") for _, path in OPERATORS)
    # An id in the path is what makes a route OWNED; the allowlist cannot take such a route.
    assert all("{" in path for _, path in OWNED)
    assert not any("{" in path for _, path in UNOWNED)


def _undocumented(app: FastAPI) -> set[Route]:
    return {
        (method, str(route.path))
        for route in iter_route_contexts(app.routes)
        if not route.include_in_schema
        for method in (route.methods or set()) - {"HEAD"}
    }


def test_every_route_outside_the_document_is_in_the_matrix(api_app: FastAPI) -> None:
    assert _undocumented(api_app) == OUTSIDE.keys(), "a hidden route has no entry, or one is stale"


def _production(settings: ApiSettings, **http: Any) -> ApiSettings:
    return settings.model_copy(
        update={
            "environment": "production",
            "api": settings.api.model_copy(update=http),
        }
    )


async def test_metrics_need_their_token(api_settings: ApiSettings, api_engine: AsyncEngine) -> None:
    token = secrets.token_urlsafe(32)
    for settings in (
        api_settings,
        _production(api_settings),
    ):
        guarded = settings.model_copy(
            update={"api": settings.api.model_copy(update={"metrics_token": SecretStr(token)})}
        )
        async with app_client(create_app(guarded, engine=api_engine)) as api:
            for headers in ({}, bearer("wrong"), {"Authorization": token}, bearer(token + "x")):
                refused = await api.get("/metrics", headers=headers)
                assert refused.status_code == 401, (settings.environment, headers)
                assert refused.headers["www-authenticate"] == "Bearer"
                assert "genstream_http_requests_total" not in refused.text
            served = await api.get("/metrics", headers=bearer(token))
            assert served.status_code == 200, served.text
            assert "genstream_http_requests_total" in served.text
    # Without a token, local and test runs serve them to anyone.
    async with app_client(create_app(api_settings, engine=api_engine)) as api:
        assert (await api.get("/metrics")).status_code == 200


async def test_production_serves_no_description(
    api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    production = _production(api_settings)
    async with app_client(create_app(production, engine=api_engine)) as api:
        nowhere = await api.get("/no-such-page")
        assert nowhere.status_code == 404
        # Off, they are not there at all: the answer of a path that names nothing.
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect", "/metrics"):
            answer = await api.get(path)
            assert answer.status_code == 404, path
            assert _without_instance(answer.json()) == _without_instance(nowhere.json()), path
        assert (await api.get("/healthz")).status_code == 200
    # Turned on by their setting, they are served in production too.
    described = _production(api_settings, docs_enabled=True)
    async with app_client(create_app(described, engine=api_engine)) as api:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await api.get(path)).status_code == 200, path
    # And off by it anywhere else.
    hidden = api_settings.model_copy(
        update={"api": api_settings.api.model_copy(update={"docs_enabled": False})}
    )
    async with app_client(create_app(hidden, engine=api_engine)) as api:
        assert (await api.get("/openapi.json")).status_code == 404


async def test_another_users_resources_do_not_exist(world: World) -> None:
    # One world for every route: each owner's call below touches only its own resource.
    for route in OWNED:
        try:
            await _a_stranger_gets_404(world, route)
        except AssertionError as error:
            raise AssertionError(f"{' '.join(route)}: {error}") from error


async def _a_stranger_gets_404(world: World, route: Route) -> None:
    method, template = route
    entry = OWNED[route]
    name = template[template.index("{") + 1 : template.index("}")]
    path = template.replace(f"{{{name}}}", entry.resource(world))
    nowhere = template.replace(f"{{{name}}}", _unknown_like(entry.resource(world)))

    refused = await world.api.request(method, path, headers=world.bob.headers)
    unknown = await world.api.request(method, nowhere, headers=world.bob.headers)

    assert refused.status_code == 404, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert _without_instance(refused.json()) == _without_instance(unknown.json())
    if template.endswith("/events"):
        # Browsers' EventSource sends the token in the query string.
        query = {"access_token": world.bob.access_token}
        assert (await world.api.get(path, params=query)).status_code == 404
    # The resource is real and the stranger changed nothing: its owner still gets it.
    owner_headers = world.alice.headers | entry.owner_headers(world)
    owned = await world.api.request(method, path, headers=owner_headers)
    assert owned.status_code == entry.owner_status, owned.text


def _unknown_like(resource_id: str) -> str:
    """An id of the same shape that names nothing."""
    if resource_id.startswith("job_"):
        return f"job_{uuid.uuid4().hex}"
    return str(uuid.uuid4())


def _without_instance(problem: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in problem.items() if key != "instance"}


async def test_routes_without_ids_answer_for_the_caller_alone(world: World) -> None:
    checks = dict.fromkeys(check for check in UNOWNED.values() if not isinstance(check, str))
    # Signing out ends Bob's session, which the other checks use: it goes last.
    for check in sorted(checks, key=lambda check: check is _logout):
        routes = [" ".join(route) for route, entry in UNOWNED.items() if entry is check]
        try:
            await check(world)
        except AssertionError as error:
            raise AssertionError(f"{', '.join(routes)}: {error}") from error


async def test_operators_routes_refuse_everyone_but_admins(world: World) -> None:
    for (method, template), body in OPERATORS.items():
        path = template.replace("{user_id}", world.alice.id).replace("{job_id}", "job_1")
        params = {"email": "someone@example.com"} if "{" not in template else None
        anonymous = await world.api.request(method, path, json=body, params=params)
        assert anonymous.status_code == 401, f"{method} {template}: {anonymous.text}"
        for user in (world.alice, world.bob):
            refused = await world.api.request(
                method, path, json=body, params=params, headers=user.headers
            )
            assert refused.status_code == 403, f"{method} {template}: {refused.text}"
    # Nothing was changed by the refused calls: Alice's plan is still her own.
    me = await world.api.get("/v1/me", headers=world.alice.headers)
    assert me.json()["plan"] == "FREE"
