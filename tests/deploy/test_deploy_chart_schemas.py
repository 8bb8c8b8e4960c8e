"""The chart lints, renders with its default and its production-style values, and every
rendered manifest is valid: Kubernetes' own kinds against the Kubernetes JSON schemas
(kubernetes-validate, strict: unknown fields fail), KEDA's against its CRDs, Strimzi's
against the validators generated from its CRDs."""

from __future__ import annotations

import copy
import functools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.chart import (
    CHART,
    SCHEMAS,
    VALUE_FILES,
    Manifest,
    helm,
    of_kind,
    render,
)

KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
"""The chart's oldest Kubernetes (Chart.yaml's kubeVersion) and the newest schemas shipped."""
VALIDATE_SCRIPT = Path(__file__).with_name("strimzi_validate.mjs")
STRIMZI_VALIDATORS = SCHEMAS / "strimzi/node_modules/@kubernetes-models/strimzi-kafka-operator"


def _custom(manifest: Manifest) -> bool:
    group = manifest["apiVersion"].partition("/")[0]
    return group.endswith((".strimzi.io", "keda.sh"))


@pytest.mark.parametrize("values", list(VALUE_FILES))
def test_helm_lint_passes(values: str) -> None:
    args = [a for path in VALUE_FILES[values] for a in ("-f", str(path))]
    done = helm("lint", "--strict", str(CHART), *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("values", list(VALUE_FILES))
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_kinds_match_the_kubernetes_schemas(values: str, version: str) -> None:
    manifests = [m for m in render(values) if not _custom(m)]
    assert {m["kind"] for m in manifests} >= {
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Job",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    }
    for manifest in manifests:
        kubernetes_validate.validate(manifest, version, strict=True)


def test_the_kubernetes_schemas_refuse_what_is_wrong() -> None:
    (deployment, *_) = of_kind(render("default"), "Deployment")
    wrong = copy.deepcopy(deployment)
    wrong["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, KUBERNETES_VERSIONS[0], strict=True)
    unknown = copy.deepcopy(deployment)
    unknown["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, KUBERNETES_VERSIONS[0], strict=True)


def _closed(schema: Any) -> Any:
    """The CRD's schema with unknown fields refused where Kubernetes would prune or, under
    strict field validation (kubectl's default), refuse them."""
    if isinstance(schema, dict):
        closed = {key: _closed(value) for key, value in schema.items()}
        if (
            "properties" in closed
            and "additionalProperties" not in closed
            and not closed.get("x-kubernetes-preserve-unknown-fields")
        ):
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


@functools.cache
def _keda_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    found: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
    paths = sorted((SCHEMAS / "keda").glob("keda.sh_*.yaml"))
    assert paths, f"no KEDA CRDs in {SCHEMAS / 'keda'}: run infra/setup.sh deploy-schemas"
    for path in paths:
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            schema = _closed(version["schema"]["openAPIV3Schema"])
            api_version = f"{crd['spec']['group']}/{version['name']}"
            found[(api_version, crd["spec"]["names"]["kind"])] = jsonschema.Draft7Validator(schema)
    return found


def _keda_errors(manifest: Manifest) -> list[str]:
    validator = _keda_validators()[(manifest["apiVersion"], manifest["kind"])]
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(manifest)]


@pytest.mark.parametrize("values", list(VALUE_FILES))
def test_keda_resources_match_keda_s_crds(values: str) -> None:
    manifests = [m for m in render(values) if m["apiVersion"].startswith("keda.sh/")]
    assert {m["kind"] for m in manifests} >= {"ScaledObject"}
    for manifest in manifests:
        assert _keda_errors(manifest) == [], manifest["metadata"]["name"]


def test_keda_s_crds_refuse_what_is_wrong() -> None:
    (scaled, *_) = of_kind(render("default"), "ScaledObject")
    wrong = copy.deepcopy(scaled)
    wrong["spec"]["maxReplicaCount"] = "many"
    assert _keda_errors(wrong) != []
    unknown = copy.deepcopy(scaled)
    unknown["spec"]["triggers"][0]["lag"] = "1"
    assert _keda_errors(unknown) != []


def _strimzi_errors(manifests: list[Manifest]) -> list[Any]:
    node = shutil.which("node")
    assert node is not None, "node is needed to run Strimzi's validators"
    assert STRIMZI_VALIDATORS.is_dir(), "run infra/setup.sh deploy-schemas"
    done = subprocess.run(
        [node, str(VALIDATE_SCRIPT), str(STRIMZI_VALIDATORS)],
        input=json.dumps(manifests),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    results: list[Any] = json.loads(done.stdout)
    assert len(results) == len(manifests)
    return results


def test_strimzi_resources_match_strimzi_s_crds() -> None:
    manifests = [m for m in render("production") if m["apiVersion"].startswith("kafka.strimzi.io/")]
    assert {m["kind"] for m in manifests} == {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}
    wrong = copy.deepcopy(next(m for m in manifests if m["kind"] == "KafkaTopic"))
    wrong["spec"]["partitions"] = "twelve"
    *results, refused = _strimzi_errors([*manifests, wrong])
    assert [
        (m["kind"], m["metadata"]["name"], r) for m, r in zip(manifests, results, strict=True) if r
    ] == []
    assert refused, "Strimzi's validators took a KafkaTopic with partitions: twelve"
