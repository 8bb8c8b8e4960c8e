"""Prometheus metrics: request counts and latencies by route, served at /metrics.

With ``api.metrics_token`` set, scrapers send it as a bearer token and others get 401;
without one, /metrics is open in local and test runs and not there (404) in production.
"""

from __future__ import annotations

import hmac
import time

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import SettingsDep
from api.problems import Problem

REQUESTS = Counter(
    "genstream_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "genstream_http_request_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)

router = APIRouter(tags=["health"])


async def _scraper(request: Request, settings: SettingsDep) -> None:
    token = settings.api.metrics_token.get_secret_value()
    if not token:
        if settings.environment == "production":
            raise HTTPException(404)  # the router's own answer for a path that names nothing
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        raise Problem(
            401, "metrics need their bearer token", headers={"WWW-Authenticate": "Bearer"}
        )


@router.get(
    "/metrics", operation_id="metrics", include_in_schema=False, dependencies=[Depends(_scraper)]
)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _route_template(scope: Scope) -> str:
    # Label by template, not by path: ids in paths would make one series per job. The router
    # records the route it matched in the scope.
    route = scope.get("route")
    return str(getattr(route, "path", "unmatched"))


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, observed_send)
        finally:
            route = _route_template(scope)
            method = scope.get("method", "GET")
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(time.perf_counter() - started)
