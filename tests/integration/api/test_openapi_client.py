"""The OpenAPI document is typed enough to generate a client that submits a typed job.

``openapi-python-client`` generates a package from the served ``/openapi.json`` into a
temporary folder; the test imports it and uses its models (one per job type, their inputs
with defaults) and its enums against the real API, broker and database.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from api.app import create_app
from api.settings import ApiSettings
from contracts import ImageGenerateInput, JobRequested, JobType, TopicSpec
from genstream.db import async_engine
from genstream.settings import StackSettings
from producers import EventProducer
from tests.integration.api.accounts import PASSWORD
from tests.integration.api.live import isolated_settings, serve
from tests.integration.api.test_jobs_submit import events_on

_PACKAGE = "genstream_generated_client"
_CONFIG = "post_hooks: []\n"
"""No formatter runs over the generated code: the test only imports it."""


def _generator() -> str:
    found = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("openapi-python-client is missing: install the dev extra (make test does)")
    return found


@pytest.fixture
def served(
    api_settings: ApiSettings,
    stack: StackSettings,
    pg_schema: tuple[Engine, str],
    make_topic: Callable[[str], TopicSpec],
) -> Iterator[tuple[str, TopicSpec]]:
    requested = make_topic("jobs.requested")
    settings = isolated_settings(api_settings, requested=requested)
    engine = async_engine(settings.pg, schema=pg_schema[1])
    with (
        EventProducer(settings=stack.kafka) as producer,
        serve(create_app(settings, engine=engine, dispose_engine=True, producer=producer)) as url,
    ):
        yield url, requested


@pytest.fixture
def generated(served: tuple[str, TopicSpec], tmp_path: Path) -> Iterator[ModuleType]:
    url, _ = served
    document = tmp_path / "openapi.json"
    document.write_bytes(httpx.get(f"{url}/openapi.json").raise_for_status().content)
    config = tmp_path / "config.yml"
    config.write_text(_CONFIG)
    output = tmp_path / "client" / _PACKAGE
    result = subprocess.run(
        [
            _generator(),
            "generate",
            "--path", str(document),
            "--output-path", str(output),
            "--meta", "none",
            "--config", str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # A warning would mean a schema the generator could not type, and a model missing.
    assert "Warning" not in result.stdout, result.stdout
    sys.path.insert(0, str(output.parent))
    try:
        yield importlib.import_module(_PACKAGE)
    finally:
        sys.path.remove(str(output.parent))
        for name in [name for name in sys.modules if name.split(".")[0] == _PACKAGE]:
            del sys.modules[name]


def _token(url: str) -> str:
    email = f"client-{uuid.uuid4().hex[:12]}@example.com"
    signed_up = httpx.post(f"{url}/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert signed_up.status_code == 202, signed_up.text
    tokens = httpx.post(f"{url}/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    token: str = tokens.json()["access_token"]
    return token


def _module(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


def test_a_generated_client_submits_a_typed_job(
    generated: ModuleType, served: tuple[str, TopicSpec], stack: StackSettings
) -> None:
    url, requested = served
    models = _module(generated, "models")
    submit = _module(generated, "api.jobs.jobs_submit")
    read = _module(generated, "api.jobs.jobs_get")
    client = generated.AuthenticatedClient(base_url=url, token=_token(url))
    body = models.ImageGenerateJob(
        type_="image.generate",
        input_=models.ImageGenerateInput(prompt="a green sofa", width=256, height=256, seed=7),
    )

    with client as http:
        answer = submit.sync_detailed(client=http, body=body)
        assert answer.status_code == 202, answer.content
        submitted = answer.parsed
        assert isinstance(submitted, models.JobSubmitted)
        assert submitted.status is models.JobStatus.PENDING

        job = read.sync(client=http, job_id=submitted.id)
        assert isinstance(job, models.JobPublic)
        assert job.type_ is models.JobType.IMAGE_GENERATE
        assert job.status is models.JobStatus.PENDING

        # A request the document refuses is refused by the server too, with its problem.
        wrong = models.ImageGenerateJob(
            type_="image.generate", input_=models.ImageGenerateInput(prompt="x", width=100)
        )
        refused = submit.sync_detailed(client=http, body=wrong)
        assert refused.status_code == 422
        assert isinstance(refused.parsed, models.Problem)

    [event] = events_on(stack, requested, 1)
    assert isinstance(event.envelope.data, JobRequested)
    assert event.envelope.data.job_id == submitted.id
    assert event.envelope.data.job_type is JobType.IMAGE_GENERATE
    # The defaults the document publishes are the ones the server fills in.
    expected = ImageGenerateInput(prompt="a green sofa", width=256, height=256, seed=7)
    assert event.envelope.data.input == expected
    assert expected.steps == models.ImageGenerateInput(prompt="x").steps
