"""The Helm chart rendered by the real Helm, and the tools and schemas it is checked with.

Helm and the CRD schemas are installed by ``infra/setup.sh helm deploy-schemas`` (part of
``all``, which ``make test`` runs first); a test that finds them missing fails and says so.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("GENSTREAM_CACHE_DIR", ROOT / ".cache"))
CHART = ROOT / "infra" / "deploy" / "helm" / "genstream"
VALUE_FILES: dict[str, tuple[Path, ...]] = {
    "default": (),
    "production": (CHART / "values-production.yaml",),
}
"""What the chart is rendered with: its defaults, and the production-style file over them."""
RELEASE = "genstream"
NAMESPACE = "genstream"
SCHEMAS = CACHE / "deploy-schemas"

Manifest = dict[str, Any]


def helm_bin() -> Path:
    helm = CACHE / "bin" / "helm"
    if not helm.is_file():
        raise AssertionError(f"{helm} is missing: run infra/setup.sh helm")
    return helm


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_bin()), *args], capture_output=True, text=True, timeout=60, check=False
    )


def _value_args(name: str, overrides: tuple[str, ...]) -> list[str]:
    args: list[str] = []
    for path in VALUE_FILES[name]:
        args += ["-f", str(path)]
    for override in overrides:
        args += ["--set", override]
    return args


@functools.cache
def render(values: str, overrides: tuple[str, ...] = ()) -> tuple[Manifest, ...]:
    """Every manifest of ``helm template`` with the named values (and ``--set`` overrides)."""
    done = helm(
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        *_value_args(values, overrides),
    )
    if done.returncode != 0:
        raise AssertionError(f"helm template failed:\n{done.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def values_file() -> dict[str, Any]:
    """The chart's values.yaml as written (null entries included, which Helm drops)."""
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


def of_kind(manifests: tuple[Manifest, ...], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def component(manifest: Manifest) -> str:
    labels: dict[str, str] = manifest["metadata"].get("labels", {})
    return labels.get("app.kubernetes.io/component", "")


def containers(manifest: Manifest) -> Iterator[Manifest]:
    spec = manifest["spec"]
    pod = spec["template"]["spec"] if "template" in spec else spec
    yield from pod["containers"]


def env_names(container: Manifest) -> set[str]:
    return {entry["name"] for entry in container.get("env", [])}


def env_value(container: Manifest, name: str) -> str | None:
    for entry in container.get("env", []):
        if entry["name"] == name:
            value: str | None = entry.get("value")
            return value
    return None
