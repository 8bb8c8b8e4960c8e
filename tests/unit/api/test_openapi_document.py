"""The OpenAPI document types what the API takes and gives: job inputs, enums, bodies."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import create_async_engine

from api.app import create_app
from api.settings import ApiSettings, AuthSettings
from contracts import JobStatus, JobType, Plan, Tier
from contracts.inputs import INPUT_MODELS


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    settings = ApiSettings(
        environment="test", auth=AuthSettings(jwt_secret=SecretStr(secrets.token_urlsafe(48)))
    )
    # Never connected: building the document reads no database.
    engine = create_async_engine("postgresql+psycopg://nobody@127.0.0.1:1/nothing")
    schema: dict[str, Any] = create_app(settings, engine=engine).openapi()
    return schema


def _schemas(document: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"]
    return found


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    return _schemas(document)[node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node


def test_the_job_request_is_a_union_over_type_of_every_input_model(
    document: dict[str, Any],
) -> None:
    body = document["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    union = _resolve(document, body["schema"])
    assert union["discriminator"]["propertyName"] == "type"
    mapping = union["discriminator"]["mapping"]
    assert set(mapping) == {job_type.value for job_type in JobType}
    for job_type, ref in mapping.items():
        variant = _resolve(document, {"$ref": ref})
        assert variant["properties"]["type"]["const"] == job_type
        assert variant["additionalProperties"] is False
        model = INPUT_MODELS[JobType(job_type)]
        published = _resolve(document, variant["properties"]["input"])
        assert published["title"] == model.__name__
        assert set(published["properties"]) == set(model.model_fields)


def test_input_limits_and_defaults_are_published(document: dict[str, Any]) -> None:
    image = _schemas(document)["ImageGenerateInput"]["properties"]
    assert (image["width"]["minimum"], image["width"]["maximum"]) == (64, 2048)
    assert (image["width"]["multipleOf"], image["width"]["default"]) == (8, 1024)
    assert image["steps"]["default"] == 30
    assert _schemas(document)["ImageGenerateInput"]["required"] == ["prompt"]
    assert _schemas(document)["VideoEnhanceInput"]["properties"]["scale"]["enum"] == [2, 4]
    speech = _schemas(document)["AudioSpeechInput"]["properties"]["text"]
    assert (speech["minLength"], speech["maxLength"]) == (1, 5000)


def test_status_tier_plan_and_type_are_enums(document: dict[str, Any]) -> None:
    schemas = _schemas(document)
    for enum, values in (
        ("JobStatus", JobStatus),
        ("Tier", Tier),
        ("Plan", Plan),
        ("JobType", JobType),
    ):
        assert set(schemas[enum]["enum"]) == {member.value for member in values}, enum
    summary = schemas["JobSummary"]["properties"]
    assert summary["status"] == {"$ref": "#/components/schemas/JobStatus"}
    assert {"$ref": "#/components/schemas/Tier"} in summary["tier"]["anyOf"]
    assert summary["type"] == {"$ref": "#/components/schemas/JobType"}
    assert schemas["JobSubmitted"]["properties"]["status"] == {
        "$ref": "#/components/schemas/JobStatus"
    }
    assert schemas["UserPublic"]["properties"]["plan"] == {"$ref": "#/components/schemas/Plan"}


def test_the_payment_webhook_declares_its_body(document: dict[str, Any]) -> None:
    body = document["paths"]["/v1/webhooks/payments"]["post"]["requestBody"]
    assert body["required"] is True
    schema = body["content"]["application/json"]["schema"]
    assert schema["required"] == ["id", "type", "data"]
    assert schema["properties"]["data"]["required"] == ["object"]
