"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
_log = logging.getLogger(__name__)

_PROBLEM_SCHEMA_NAME = "Problem"
_PROBLEM_SCHEMA: dict[str, Any] = {
    "title": _PROBLEM_SCHEMA_NAME,
    "description": "RFC 9457 problem details. Some problems carry members of their own: "
    "``errors`` (where a request does not match the schema), ``upload_id``, ``violations``, ...",
    "type": "object",
    "required": ["type", "title", "status", "instance"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "additionalProperties": True,
}


class Problem(Exception):  # noqa: N818 - RFC 9457's own name for it
    """Raised anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        title: str | None = None,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title or HTTPStatus(status).phrase)
        self.status = status
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.type = type_
        self.headers = headers or {}
        self.extensions = extensions


def problem_response(problem: Problem, request: Request) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem.type,
        "title": problem.title,
        "status": problem.status,
        "instance": request.url.path,
    }
    if problem.detail:
        body["detail"] = problem.detail
    body.update(problem.extensions)
    return JSONResponse(
        body, status_code=problem.status, headers=problem.headers, media_type=PROBLEM_JSON
    )


def problem_responses(
    *statuses: int, described: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` saying that a route answers these statuses with problem documents.

    ``described`` adds statuses with a description of their own. A route that declares 422
    this way replaces FastAPI's default 422, whose body this API never sends.
    """
    descriptions = {status: HTTPStatus(status).phrase for status in statuses}
    descriptions.update(described or {})
    schema = {"$ref": f"#/components/schemas/{_PROBLEM_SCHEMA_NAME}"}
    return {
        status: {"description": description, "content": {PROBLEM_JSON: {"schema": schema}}}
        for status, description in sorted(descriptions.items())
    }


def not_found(what: str = "resource") -> Problem:
    """The one answer for things that do not exist and things that belong to someone else."""
    return Problem(404, f"no such {what}")


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc, request)


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    return problem_response(
        Problem(exc.status_code, detail, headers=dict(exc.headers or {})), request
    )


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only where and why: the offending input may be a password or a token.
    errors = [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": error.get("msg"),
            "type": error.get("type"),
        }
        for error in exc.errors()
    ]
    problem = Problem(422, "the request does not match the schema", errors=errors)
    return problem_response(problem, request)


async def _on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Every pooled connection busy, or the server gone: the request may succeed shortly,
    # so the client is told to come back rather than that something broke.
    _log.warning("database unavailable: %s", type(exc).__name__, extra={"path": request.url.path})
    problem = Problem(
        503,
        "the service is busy or its database is unreachable; retry shortly",
        type_="unavailable",
        headers={"Retry-After": "1"},
    )
    return problem_response(problem, request)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    _log.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(Problem(500, "an unexpected error occurred"), request)


def _publish_problem_schema(app: FastAPI) -> None:
    """Adds the schema that ``problem_responses`` refers to to the app's OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()  # FastAPI builds it once and keeps it
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault(_PROBLEM_SCHEMA_NAME, _PROBLEM_SCHEMA)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def install_problem_handlers(app: FastAPI) -> None:
    """Answers every error with a problem document, and documents them in OpenAPI."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    for unavailable in (PoolTimeoutError, OperationalError, InterfaceError):
        app.add_exception_handler(unavailable, _on_database_unavailable)
    app.add_exception_handler(Exception, _on_unexpected)
    _publish_problem_schema(app)
