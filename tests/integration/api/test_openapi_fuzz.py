"""Every operation of the OpenAPI document, fuzzed by Schemathesis against the real stack.

Each operation gets valid and invalid requests, the document's examples, and, where its
path names a resource, valid requests about the user's own. Requests carry a real user's
access token; generated ids name nobody's resources, so those routes answer 4xx, which is
what they must do. No request may end in a 5xx, and every answer must be one the document
declares: its status, its content type, its body. The event streams are the exception for
bodies: a 200 there is an endless ``text/event-stream``, so only its status and content type
are checked before it is closed.

Job submissions are also fuzzed one job type at a time, each with valid requests of its own
variant of the typed body, so that every input model's limits and defaults are exercised;
the jobs the server accepted must hold inputs their type's model decodes.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import CHECKS as CHECKS_REGISTRY
from schemathesis.checks import load_all_checks
from schemathesis.core.result import Ok
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from api.app import create_app
from api.settings import ApiSettings, RateLimitSettings
from contracts import TopicSpec, input_model_for
from genstream.db import async_engine, sync_engine
from genstream.db.models import Job
from genstream.settings import StackSettings
from producers import EventProducer
from tests.integration.api.accounts import PASSWORD, bearer
from tests.integration.api.lifecycle import Story, add_job, granted, project
from tests.integration.api.live import isolated_settings, serve

STREAMS: Final = frozenset({"/v1/events", "/v1/jobs/{job_id}/events"})
"""Operations whose 200 is an endless event stream."""
SUBMIT: Final = ("/v1/jobs", "post")
ACCEPTED_TYPES: Final = frozenset({"synthetic", "audio.speech", "image.generate"})
"""Job types a valid request of which the fuzzing user can have accepted: no upload to name,
no plan limit the schema cannot state."""
_TIMEOUT_S: Final = 30.0
CHECKS: Final = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "ignored_auth",
    "unsupported_method",
    "allow_header_conformance",
)
"""Schemathesis's response checks, less ``positive_data_acceptance``: a schema-valid request
may still break a rule the schema cannot state (the password length is a setting, a job's
input depends on its type, an id names nobody's resource), and 4xx is then the right answer."""
_CONFIG: Final = schemathesis.Config.from_dict(
    {
        "generation": {
            # The API ignores query parameters it does not know, as HTTP APIs do.
            "allow-extra-parameters": False,
            # Every request carries the user's token; refused tokens have tests of their own.
            "with-security-parameters": False,
        }
    }
)
_EXAMPLES: Final = settings(
    max_examples=10,
    deadline=None,
    database=None,
    # Without shrinking the run stays bounded; a failure still shows the request that failed.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@dataclass(frozen=True, slots=True)
class Target:
    base_url: str
    user_id: str
    email: str
    headers: dict[str, str]
    """The user's bearer token, of a session that stays open for the whole run."""
    resources: dict[str, list[str]]
    """Ids of the user's own resources, by path parameter."""
    session: requests.Session
    document: dict[str, Any]

    def sign_in(self) -> dict[str, str]:
        return _sign_in(self.base_url, self.email)


def _sign_in(base_url: str, email: str) -> dict[str, str]:
    """A bearer token of a new session of the user's."""
    form = {"username": email, "password": PASSWORD}
    tokens = httpx.post(f"{base_url}/v1/auth/token", data=form)
    assert tokens.status_code == 200, tokens.text
    return bearer(tokens.json()["access_token"])


@pytest.fixture
def schema_engine(stack: StackSettings, pg_schema: tuple[Engine, str]) -> Iterator[Engine]:
    engine = sync_engine(stack.pg, schema=pg_schema[1])
    yield engine
    engine.dispose()


@pytest.fixture
def target(
    api_settings: ApiSettings,
    stack: StackSettings,
    pg_schema: tuple[Engine, str],
    schema_engine: Engine,
    make_topic: Callable[[str], TopicSpec],
) -> Iterator[Target]:
    settings = isolated_settings(
        api_settings, requested=make_topic("jobs.requested"), progress=make_topic("jobs.progress")
    )
    # Out of the way: the fuzzer would spend its examples on 429s (declared, and tested elsewhere).
    unlimited = RateLimitSettings(auth_per_ip=1_000_000, auth_per_account=1_000_000)
    # And no submission waits for its end: no worker runs here to end it.
    no_wait = settings.jobs.model_copy(update={"wait_max_s": 0})
    settings = settings.model_copy(update={"rate_limits": unlimited, "jobs": no_wait})
    engine = async_engine(settings.pg, schema=pg_schema[1])
    with (
        EventProducer(settings=stack.kafka) as producer,
        serve(create_app(settings, engine=engine, dispose_engine=True, producer=producer)) as url,
        requests.Session() as session,
    ):
        email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
        signed_up = httpx.post(
            f"{url}/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert signed_up.status_code == 202, signed_up.text
        headers = _sign_in(url, email)
        me = httpx.get(f"{url}/v1/me", headers=headers)
        assert me.status_code == 200, me.text
        key = httpx.post(f"{url}/v1/api-keys", json={"name": "fuzz"}, headers=headers)
        assert key.status_code == 201, key.text
        resources = {
            "job_id": _seed(schema_engine, me.json()["id"]),
            "key_id": [key.json()["id"]],
            # Operators' routes about a user: the fuzzing user is none, and is refused.
            "user_id": [me.json()["id"]],
        }
        document = httpx.get(f"{url}/openapi.json").json()
        yield Target(url, me.json()["id"], email, headers, resources, session, document)


def _seed(engine: Engine, user_id: str) -> list[str]:
    """A finished and a queued job of the user's, and credits; returns the jobs' ids."""
    done = Story(user_id, add_job(engine, user_id))
    waiting = Story(user_id, add_job(engine, user_id))
    project(
        engine,
        [
            granted(user_id, 100),
            done.accepted(), done.reserved(), done.queued(), done.started(), done.preview(1),
            done.completed(), done.settled(4, 1),
            waiting.accepted(), waiting.queued(),
        ],
    )  # fmt: skip
    return [done.job_id, waiting.job_id]


# Every operation of the document, each with its examples: more than the default's time on a
# loaded 2-core machine.
@pytest.mark.timeout(360)
def test_no_operation_fails_or_breaks_its_contract(target: Target, schema_engine: Engine) -> None:
    schema = schemathesis.openapi.from_dict(target.document, config=_CONFIG)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"Schemathesis cannot read an operation: {result.err()}"
        operations.append(result.ok())
    assert len(operations) == sum(len(methods) for methods in target.document["paths"].values())
    failures: list[str] = []
    for operation in operations:
        for label, cases in _strategies(schema, operation, target):
            try:
                _fuzz(operation, cases, target)
            except Unsatisfiable:
                # Nothing can be invalid in a request without parameters, or with only an
                # optional free-form header.
                assert label == GenerationMode.NEGATIVE.value, operation.label
            except (Exception, BaseExceptionGroup) as error:  # each is fuzzed; all are reported
                failures.append(f"{operation.label} ({label}):\n{error}")
    assert not failures, "\n\n".join(failures)
    # The run was made by a signed-in user to the end: no answer was a 401 by accident.
    assert httpx.get(f"{target.base_url}/v1/me", headers=target.headers).status_code == 200
    _typed_jobs_were_accepted(schema_engine, target)


def _typed_jobs_were_accepted(engine: Engine, target: Target) -> None:
    """The typed fuzzing reached the broker, and what it stored is what the models accept."""
    seeded = set(target.resources["job_id"])
    with Session(engine) as session:
        rows = session.execute(
            select(Job.id, Job.type, Job.input).where(Job.user_id == uuid.UUID(target.user_id))
        ).all()
    accepted = [(kind, job_input) for job_id, kind, job_input in rows if job_id not in seeded]
    for job_type, job_input in accepted:
        input_model_for(job_type).model_validate(job_input)
    assert {job_type for job_type, _ in accepted} >= {"synthetic"}, accepted
    assert len({job_type for job_type, _ in accepted} & ACCEPTED_TYPES) >= 2, accepted


def _strategies(
    schema: schemathesis.BaseSchema, operation: APIOperation, target: Target
) -> Iterator[tuple[str, SearchStrategy[Case]]]:
    """Valid and invalid requests, the document's examples, and valid requests about the
    user's own resources."""
    for mode in GenerationMode:
        yield mode.value, operation.as_strategy(generation_mode=mode)
    for examples in schema.get_strategies_from_examples(operation):
        yield "examples", examples
    for parameter in operation.path_parameters:
        for value in target.resources[parameter.name]:
            fixed = {parameter.name: value}
            yield f"own {parameter.name}", operation.as_strategy(path_parameters=fixed)
    if (operation.path, operation.method.lower()) == SUBMIT:
        yield from _typed_submissions(target)


def _typed_submissions(target: Target) -> Iterator[tuple[str, SearchStrategy[Case]]]:
    """Valid requests of each job type's variant alone: the whole union leaves most types
    a few examples each."""
    path, method = SUBMIT
    body = target.document["paths"][path][method]["requestBody"]["content"]["application/json"]
    union = target.document["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[1]]
    for job_type, variant in union["discriminator"]["mapping"].items():
        narrowed = copy.deepcopy(target.document)
        narrowed["paths"][path][method]["requestBody"]["content"]["application/json"] = {
            "schema": {"$ref": variant}
        }
        operation = schemathesis.openapi.from_dict(narrowed, config=_CONFIG)[path][method.upper()]
        yield f"typed {job_type}", operation.as_strategy(generation_mode=GenerationMode.POSITIVE)


def _fuzz(operation: APIOperation, cases: SearchStrategy[Case], target: Target) -> None:
    @_EXAMPLES
    @given(case=cases)
    def examples(case: Case) -> None:
        # Signing out ends the session of the token it is sent with: each gets its own.
        headers = target.sign_in() if operation.path == "/v1/auth/logout" else target.headers
        if operation.path in STREAMS:
            _check_stream(case, target, headers)
        else:
            case.call_and_validate(
                base_url=target.base_url,
                session=target.session,
                headers=headers,
                checks=_checks(),
                timeout=_TIMEOUT_S,
            )

    examples()


def _checks() -> list[Any]:
    load_all_checks()
    return CHECKS_REGISTRY.get_by_names(CHECKS)


def _check_stream(case: Case, target: Target, headers: dict[str, str]) -> None:
    """A finite answer is validated whole; a stream by its status and content type."""
    request = case.as_transport_kwargs(base_url=target.base_url, headers=headers)
    with target.session.request(**request, stream=True, timeout=_TIMEOUT_S) as response:
        if response.status_code != 200:
            response.content  # noqa: B018 -- read whole: the answer is finite
            case.validate_response(response, headers=headers, checks=_checks())
            return
        assert response.headers["content-type"].startswith("text/event-stream")
        documented = target.document["paths"][case.operation.path]["get"]["responses"]
        assert "text/event-stream" in documented["200"]["content"]
