"""Job inputs over HTTP: strict types and no control characters, refused before any event."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import JobRequested, TopicSpec
from genstream.settings import StackSettings
from tests.integration.api.test_jobs_submit import (
    events_on,
    is_problem,
    sign_up,
)

REFUSED: list[tuple[dict[str, Any], str, str]] = [
    ({"type": "image.generate", "input": {"prompt": "x", "width": "512"}}, "width", "int_type"),
    ({"type": "image.generate", "input": {"prompt": "x", "width": True}}, "width", "int_type"),
    ({"type": "image.generate", "input": {"prompt": "x", "width": 512.0}}, "width", "int_type"),
    ({"type": "synthetic", "input": {"steps": "3"}}, "steps", "int_type"),
    ({"type": "image.generate", "input": {"prompt": 5}}, "prompt", "string_type"),
    (
        {"type": "image.generate", "input": {"prompt": "red \x1b[31malert"}},
        "prompt",
        "control_character",
    ),
    ({"type": "audio.speech", "input": {"text": "bell\x07"}}, "text", "control_character"),
    ({"type": "audio.speech", "input": {"text": "next\x85line"}}, "text", "control_character"),
]


async def test_inputs_of_another_type_or_with_control_characters_are_refused(
    jobs_client: httpx.AsyncClient,
    api_engine: AsyncEngine,
    stack: StackSettings,
    requested: TopicSpec,
) -> None:
    alice = await sign_up(jobs_client, api_engine)
    for body, field, error_type in REFUSED:
        problem = is_problem(
            await jobs_client.post("/v1/jobs", json=body, headers=alice.headers), 422
        )
        assert problem["type"] == "invalid_input", body
        assert [(e["loc"], e["type"]) for e in problem["errors"]] == [
            (["body", "input", field], error_type)
        ], body
    events_on(stack, requested, 0)


async def test_an_input_is_stored_and_sent_as_it_was_given(
    jobs_client: httpx.AsyncClient,
    api_engine: AsyncEngine,
    stack: StackSettings,
    requested: TopicSpec,
) -> None:
    alice = await sign_up(jobs_client, api_engine)
    text = "First line.\n\tSecond line.\r\nThird."
    body = {"type": "audio.speech", "input": {"text": text}}

    submitted = await jobs_client.post("/v1/jobs", json=body, headers=alice.headers)

    assert submitted.status_code == 202, submitted.text
    read = await jobs_client.get(f"/v1/jobs/{submitted.json()['id']}", headers=alice.headers)
    assert read.json()["input"]["text"] == text
    [event] = events_on(stack, requested, 1)
    assert isinstance(event.envelope.data, JobRequested)
    assert event.envelope.data.input.model_dump()["text"] == text
