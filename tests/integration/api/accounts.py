"""Account helpers for API tests: sign up, sign in, and the header that proves it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from api.settings import ApiSettings

PASSWORD = "correct horse battery staple"


async def sign_up(
    api: httpx.AsyncClient, email: str | None = None, password: str = PASSWORD
) -> str:
    """Signs up, at a fresh address unless given; returns the address as the account has it.

    The answer is the same whether or not the address had an account already.
    """
    email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
    response = await api.post("/v1/auth/register", json={"email": email, "password": password})
    assert response.status_code == 202, response.text
    known: str = response.json()["email"]
    return known


async def register(
    api: httpx.AsyncClient, email: str | None = None, password: str = PASSWORD
) -> dict[str, Any]:
    """Signs up and in, at a fresh address unless given; returns ``GET /v1/me``:
    ``{id, email, plan}``."""
    known = await sign_up(api, email, password)
    tokens = await login(api, known, password)
    me = await api.get("/v1/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200, me.text
    body: dict[str, Any] = me.json()
    return body


async def login(api: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    """Signs in; returns ``{access_token, refresh_token, token_type, expires_in}``."""
    response = await api.post("/v1/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header for an access token or an API key."""
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def app_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` like the ``api`` fixture's; requests come from 127.0.0.1."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://genstream.test") as client:
        yield client


@asynccontextmanager
async def client_with(
    settings: ApiSettings, engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app built from other settings on the test's own database schema."""
    async with app_client(create_app(settings, engine=engine)) as client:
        yield client
