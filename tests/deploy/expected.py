"""What the chart must hold, read from the code: the services infra/services.sh runs, the
console scripts of pyproject.toml, each service's settings class and the Kafka principals."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tomllib
import typing
from dataclasses import dataclass, field

from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings

from api.projection.main import ProjectionSettings
from api.settings import ApiSettings
from api.webhooks.settings import DispatcherSettings
from genstream.settings import StackSettings
from gpu_consumers.settings import WorkerSettings
from producers.outbox_main import OutboxRelaySettings
from stream_processors.settings import ProcessorSettings
from tests.deploy.chart import ROOT

SETTINGS: dict[str, type[BaseSettings]] = {
    "genstream-api": ApiSettings,
    "genstream-outbox-relay": OutboxRelaySettings,
    "genstream-projection": ProjectionSettings,
    "genstream-processors": ProcessorSettings,
    "genstream-worker": WorkerSettings,
    "genstream-webhooks": DispatcherSettings,
    "gpu_consumers.retry_relay": WorkerSettings,
    "genstream": StackSettings,
}
"""The settings class each program reads, by console script or module. A service whose
program is missing here fails the tests: add its class, then the chart."""

JOBS: dict[str, type[BaseSettings]] = {"migrations": StackSettings, "bootstrap": StackSettings}
"""The chart's Jobs (by component) and the settings of the genstream code they run."""

TRACING_ENV = frozenset(
    {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"}
)
"""The OpenTelemetry SDK's own variables, which every service reads (genstream/tracing.py)."""

LOCAL_ONLY = frozenset({"GENSTREAM_WEBHOOKS__ALLOW_LOOPBACK"})
"""Settings infra/services.sh gives a service for the one-machine stack only: webhooks to
loopback are how the local demo receives them, and never allowed on a cluster."""


@dataclass(frozen=True)
class Service:
    name: str
    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def program(self) -> str:
        """The console script, or the module run with ``python -m``."""
        return self.command[2] if self.command[:2] == ("python", "-m") else self.command[0]


VENV = "/venv"
"""Where the listed commands' programs live, as the listing is evaluated here."""


def _listing() -> list[str]:
    """infra/services.sh's SERVICES as bash expands them (variables, arithmetic), without
    running anything: its lines up to the end of the list, after lib.sh's settings."""
    text = (ROOT / "infra" / "services.sh").read_text()
    block = re.search(r"^SERVICES=\(\n.*?^\)$", text, re.MULTILINE | re.DOTALL)
    assert block is not None, "infra/services.sh has no SERVICES=( ... ) list"
    head = [
        line for line in text[: block.end()].splitlines() if not line.startswith(("source ", "#!"))
    ]
    script = "\n".join(['source "$1/infra/lib.sh"', *head, 'printf "%s\\n" "${SERVICES[@]}"'])
    done = subprocess.run(
        ["bash", "-c", script, "services", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={**os.environ, "GENSTREAM_VENV": VENV},
    )
    return done.stdout.splitlines()


def services() -> list[Service]:
    """infra/services.sh's SERVICES, their commands and the settings they are started with."""
    found: list[Service] = []
    for entry in _listing():
        name, _, command = entry.partition("|")
        tokens = shlex.split(command)
        env: dict[str, str] = {}
        while tokens and (tokens[0] == "env" or "=" in tokens[0]):
            token = tokens.pop(0)
            if token != "env":
                key, _, value = token.partition("=")
                env[key] = value
        program = tuple(token.removeprefix(f"{VENV}/bin/") for token in tokens)
        found.append(Service(name, program, env))
    return found


def console_scripts() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(project["project"]["scripts"])


def _is_secret(annotation: object) -> bool:
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def settings_env(model: type[BaseModel], prefix: str = "GENSTREAM_") -> dict[str, bool]:
    """Every environment variable a settings class reads, and whether it is a secret."""
    found: dict[str, bool] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.update(settings_env(annotation, f"{prefix}{name.upper()}__"))
        else:
            found[f"{prefix}{name.upper()}"] = _is_secret(annotation)
    return found


def all_settings() -> dict[str, bool]:
    found: dict[str, bool] = {}
    for model in SETTINGS.values():
        found.update(settings_env(model))
    return found


def settings_for(program: str) -> type[BaseSettings]:
    assert program in SETTINGS, (
        f"no settings class known for {program!r}: add it to tests/deploy/expected.py "
        "and the service to the chart"
    )
    return SETTINGS[program]


UNUSED_PARTS: dict[str, set[str]] = {
    "gpu_consumers.retry_relay": {"s3"},
    "genstream-webhooks": {"s3"},
}
"""Stores in a program's settings class that it never connects to: the retry relay reads
the workers' settings but only moves records between topics; the webhook dispatcher signs
download links, which needs the store's keys and no connection."""


def dependencies(program: str) -> set[str]:
    """The stores a service cannot work without, from the parts of its settings."""
    parts = {"kafka": "kafka", "pg": "postgres", "s3": "s3"}
    fields = settings_for(program).model_fields
    found = {check for part, check in parts.items() if part in fields}
    return found - UNUSED_PARTS.get(program, set())


def entry_module(program: str) -> str:
    """The module a console script (pyproject.toml) or ``python -m`` runs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    scripts: dict[str, str] = project["project"]["scripts"]
    return scripts[program].partition(":")[0] if program in scripts else program


def metrics_port_setting(program: str) -> str | None:
    """The setting whose port the program's entry point serves its metrics on, if any."""
    source = (ROOT / (entry_module(program).replace(".", "/") + ".py")).read_text()
    served = re.search(r"start_http_server\(\s*settings\.(\w+)", source)
    return None if served is None else f"GENSTREAM_{served.group(1).upper()}"


def example_settings() -> set[str]:
    """The service settings .env.example documents (after its services heading)."""
    text = (ROOT / ".env.example").read_text()
    services_part = text.split("# --- Services", 1)[1]
    return set(re.findall(r"^# (GENSTREAM_[A-Z0-9_]+)=", services_part, re.MULTILINE))
