"""The Prometheus scrape configuration and alert rules in infra/deploy/prometheus.

promtool (``infra/setup.sh promtool``) checks the configuration and runs the rules' own tests
(``alerts_test.yml``: each alert fires on the series meant to raise it). Beside it, the files
are read here against the code: every port scraped is one a service of ``infra/services.sh``
listens on, and every metric an alert names is one the code exports.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from genstream.system_status import DEFAULT_SERVICES

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS = ROOT / "infra" / "deploy" / "prometheus"
PROMTOOL = ROOT / ".cache" / "bin" / "promtool"
SOURCES = ("api", "genstream", "gpu_consumers", "producers", "stream_processors")
REQUIRED = {
    "GenstreamConsumerLagGrowing",
    "GenstreamDeadLettersArriving",
    "GenstreamTierWaitingPastTtl",
    "GenstreamWorkerGroupWithoutMembers",
}


def _load(name: str) -> Any:
    return yaml.safe_load((PROMETHEUS / name).read_text())


def _services_ports() -> dict[str, int]:
    """Each service's metrics port as infra/services.sh gives it (base 9400 plus its number)."""
    text = (ROOT / "infra" / "services.sh").read_text()
    ports = {
        name: 9400 + int(offset)
        for name, offset in re.findall(
            r'"([a-z-]+)\|env [^"]*METRICS_PORT=\$\(\(M \+ (\d)\)\)', text
        )
    }
    ports["api"] = 8000
    return ports


def _scraped() -> dict[str, int]:
    scraped = {}
    for job in _load("prometheus.yml")["scrape_configs"]:
        for group in job["static_configs"]:
            for target in group["targets"]:
                scraped[group["labels"]["service"]] = int(target.rsplit(":", 1)[1])
    return scraped


def test_every_service_is_scraped_on_the_port_it_serves() -> None:
    ports = _services_ports()
    assert len(ports) == 10
    assert len(set(ports.values())) == len(ports), "two services share a metrics port"
    assert _scraped() == ports
    probed = {name: urlsplit(url).port for name, url in DEFAULT_SERVICES.items()}
    assert probed == ports, "genstream status probes other ports than the services serve"


def _exported_metrics() -> str:
    return "\n".join(
        path.read_text() for package in SOURCES for path in (ROOT / package).rglob("*.py")
    )


def test_each_alert_is_there_and_names_metrics_the_code_exports() -> None:
    rules = [rule for group in _load("alerts.yml")["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} >= REQUIRED
    code = _exported_metrics()
    for rule in rules:
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        for metric in set(re.findall(r"\bgenstream_[a-z_]+", rule["expr"])):
            assert f'"{metric}"' in code, f"{rule['alert']}: no code exports {metric}"


def test_promtool_accepts_the_configuration_and_the_rules_pass_their_tests() -> None:
    promtool = str(PROMTOOL) if PROMTOOL.exists() else shutil.which("promtool")
    assert promtool, "promtool is not built: infra/setup.sh promtool"
    for args in (
        ["check", "config", "--syntax-only", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ):
        done = subprocess.run(
            [promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"
