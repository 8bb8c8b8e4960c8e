"""The peer's submission endpoint: FastAPI on uvicorn, like genstream's, calling
``apply_async`` (``uvicorn bench.peer.api:create --factory``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header, HTTPException, status
from pydantic import BaseModel, Field

from bench.peer.celery_app import synthetic

__all__ = ["create"]


class JobCreate(BaseModel):
    type: Literal["synthetic"]
    input: dict[str, Any] = Field(default_factory=dict)


class JobSubmitted(BaseModel):
    id: str
    status: str = "pending"


def create() -> FastAPI:
    app = FastAPI(title="genstream bench peer")

    # A plain function: FastAPI runs it in its thread pool, as it does any blocking call.
    @app.post("/v1/jobs", status_code=status.HTTP_202_ACCEPTED)
    def submit(
        body: JobCreate, authorization: Annotated[str | None, Header()] = None
    ) -> JobSubmitted:
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token")
        job_id = f"job_{uuid.uuid4().hex}"
        user_id = authorization.removeprefix("Bearer ")
        synthetic.apply_async(args=(user_id, body.input), task_id=job_id, queue="pro")
        return JobSubmitted(id=job_id)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
