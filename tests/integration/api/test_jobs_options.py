"""What a caller attaches to a job: webhook events, ``metadata`` and ``end_user``.

Stored with the row, sent with the event, returned by the reads and filterable in the list;
refused with the usual problem when out of bounds.
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import JobRequested, TopicSpec
from genstream.settings import StackSettings
from tests.integration.api.test_jobs_submit import SYNTHETIC, events_on, is_problem, sign_up

HOOK = "http://127.0.0.1:9/hook"


async def test_options_are_stored_sent_returned_and_filtered(
    jobs_client: httpx.AsyncClient,
    api_engine: AsyncEngine,
    stack: StackSettings,
    requested: TopicSpec,
) -> None:
    alice = await sign_up(jobs_client, api_engine)
    metadata: dict[str, Any] = {"order": "A-17", "tags": ["x", "y"], "n": 3, "text": "é\nok"}
    first = {
        **SYNTHETIC,
        "webhook_url": HOOK,
        "webhook_events_filter": ["started", "progress", "completed"],
        "metadata": metadata,
        "end_user": "customer-9",
    }
    made = await jobs_client.post("/v1/jobs", json=first, headers=alice.headers)
    assert made.status_code == 202, made.text
    other = {**SYNTHETIC, "metadata": {"order": "B-2"}, "end_user": "customer-10"}
    second = await jobs_client.post("/v1/jobs", json=other, headers=alice.headers)
    plain = await jobs_client.post("/v1/jobs", json=SYNTHETIC, headers=alice.headers)
    assert (second.status_code, plain.status_code) == (202, 202)
    job_id = made.json()["id"]

    read = (await jobs_client.get(f"/v1/jobs/{job_id}", headers=alice.headers)).json()
    assert (read["metadata"], read["end_user"]) == (metadata, "customer-9")
    assert read["webhook_events_filter"] == ["started", "progress", "completed"]
    unset = (await jobs_client.get(f"/v1/jobs/{plain.json()['id']}", headers=alice.headers)).json()
    assert (unset["metadata"], unset["end_user"], unset["webhook_events_filter"]) == (None,) * 3

    async def listed(**query: Any) -> list[str]:
        page = await jobs_client.get("/v1/jobs", params=query, headers=alice.headers)
        assert page.status_code == 200, page.text
        return [job["id"] for job in page.json()["jobs"]]

    assert await listed(end_user="customer-9") == [job_id]
    assert await listed(metadata="order:A-17") == [job_id]
    assert await listed(metadata=["order:B-2"], end_user="customer-9") == []
    assert len(await listed()) == 3
    page = (
        await jobs_client.get("/v1/jobs", params={"end_user": "customer-10"}, headers=alice.headers)
    ).json()
    assert page["jobs"][0]["metadata"] == {"order": "B-2"}

    events = [event.envelope.data for event in events_on(stack, requested, 3)]
    [sent] = [data for data in events if isinstance(data, JobRequested) and data.job_id == job_id]
    assert (sent.metadata, sent.end_user) == (metadata, "customer-9")


async def test_options_out_of_bounds_are_refused(
    jobs_client: httpx.AsyncClient, api_engine: AsyncEngine
) -> None:
    alice = await sign_up(jobs_client, api_engine)
    refused: list[tuple[dict[str, Any], list[str], str]] = [
        (
            {"webhook_events_filter": ["completed"]},
            ["body", "webhook_events_filter"],
            "webhook_events_filter",
        ),
        (
            {"webhook_url": HOOK, "webhook_events_filter": ["started", "started"]},
            ["body", "webhook_events_filter"],
            "webhook_events_filter",
        ),
        ({"metadata": {"blob": "x" * 2100}}, ["body", "metadata"], "metadata_size"),
        ({"metadata": {"k" * 65: 1}}, ["body", "metadata", "k" * 64], "metadata_key"),
        ({"metadata": {"note": "bell\x07"}}, ["body", "metadata", "note"], "control_character"),
    ]
    for options, loc, error_type in refused:
        body = {**SYNTHETIC, **options}
        problem = is_problem(
            await jobs_client.post("/v1/jobs", json=body, headers=alice.headers), 422
        )
        assert problem["type"] == "invalid_input", options
        assert [(e["loc"], e["type"]) for e in problem["errors"]] == [(loc, error_type)], options
    # Shapes the schema states are refused by the schema's own check.
    for options in (
        {"webhook_url": HOOK, "webhook_events_filter": ["finished"]},
        {"metadata": {str(n): n for n in range(17)}},
        {"end_user": "has space"},
        {"metadata": ["not", "an", "object"]},
    ):
        answer = await jobs_client.post(
            "/v1/jobs", json={**SYNTHETIC, **options}, headers=alice.headers
        )
        assert answer.status_code == 422, options
    # The same key with other options is another request.
    key = {**alice.headers, "Idempotency-Key": "with-options"}
    assert (
        await jobs_client.post("/v1/jobs", json={**SYNTHETIC, "end_user": "a"}, headers=key)
    ).status_code == 202
    clash = await jobs_client.post("/v1/jobs", json={**SYNTHETIC, "end_user": "b"}, headers=key)
    assert is_problem(clash, 409)["type"] == "idempotency_conflict"
