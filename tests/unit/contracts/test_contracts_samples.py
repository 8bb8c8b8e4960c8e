"""Stored v1 payloads keep decoding, match their JSON Schema and round-trip exactly."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from contracts import REGISTRY, Envelope, decode, encode, kafka_headers
from contracts.schema_export import SCHEMA_DIR, check, main, render_schemas, schema_for


def test_every_registered_type_has_a_sample_and_a_schema(samples: dict[str, bytes]) -> None:
    assert set(samples) == set(REGISTRY.models)
    assert {path.stem for path in SCHEMA_DIR.glob("*.json")} == set(REGISTRY.models)


@pytest.mark.parametrize("wire_type", sorted(REGISTRY.models))
def test_sample_decodes_to_its_model(samples: dict[str, bytes], wire_type: str) -> None:
    envelope = decode(samples[wire_type])
    assert envelope.type == wire_type
    assert type(envelope.data) is REGISTRY.models[wire_type]


@pytest.mark.parametrize("wire_type", sorted(REGISTRY.models))
def test_sample_matches_json_schema(samples: dict[str, bytes], wire_type: str) -> None:
    schema = json.loads((SCHEMA_DIR / f"{wire_type}.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(json.loads(samples[wire_type]))


@pytest.mark.parametrize("wire_type", sorted(REGISTRY.models))
def test_sample_reencodes_to_the_same_json(samples: dict[str, bytes], wire_type: str) -> None:
    # A difference means a v1 model changed shape without a new version.
    envelope = decode(samples[wire_type])
    assert json.loads(encode(envelope)) == json.loads(samples[wire_type])


@pytest.mark.parametrize("wire_type", sorted(REGISTRY.models))
def test_every_type_round_trips(samples: dict[str, bytes], wire_type: str) -> None:
    data = decode(samples[wire_type]).data
    fresh = Envelope.wrap(data, user_id="user-1", source="tests")
    value = encode(fresh)
    assert decode(value) == fresh
    assert decode(value, kafka_headers(fresh)) == fresh


@pytest.mark.parametrize("wire_type", sorted(REGISTRY.models))
def test_schema_rejects_what_the_model_rejects(wire_type: str, samples: dict[str, bytes]) -> None:
    validator = jsonschema.Draft202012Validator(schema_for(wire_type))
    body = json.loads(samples[wire_type])
    assert not validator.is_valid({**body, "type": "genstream.other.v1"})
    assert not validator.is_valid({**body, "data": {**body["data"], "unexpected": 1}})


def test_schema_files_are_current() -> None:
    assert check() == []


def test_check_reports_stale_missing_and_extra_files(tmp_path: Path) -> None:
    assert main(["--dir", str(tmp_path)]) == 0
    assert main(["--check", "--dir", str(tmp_path)]) == 0
    names = sorted(render_schemas())
    (tmp_path / names[0]).write_text("{}\n", encoding="utf-8")
    (tmp_path / names[1]).unlink()
    (tmp_path / "genstream.gone.v1.json").write_text("{}\n", encoding="utf-8")
    assert check(tmp_path) == sorted([names[0], names[1], "genstream.gone.v1.json"])
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    assert main(["--dir", str(tmp_path)]) == 0
    assert check(tmp_path) == []


def test_schema_files_are_sorted_indented_and_end_with_newline() -> None:
    text = (SCHEMA_DIR / "genstream.job.completed.v1.json").read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
