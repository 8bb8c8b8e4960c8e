"""The Helm chart agrees with the code: every service infra/services.sh runs is a Deployment
with the same command, every setting of every service has its place in the chart's values,
probes ask what the code serves, and every consumer group that scales on lag is the one the
code joins, over the topics it reads, capped at their partitions."""

from __future__ import annotations

from typing import Any

import pytest

from api.health import router as health_router
from api.projection.main import ProjectionSettings
from contracts import ALL_TOPICS, Tier, Workload, tier_topics, topic_by_name, worker_group
from genstream.kafka.principals import PRINCIPALS
from stream_processors.settings import ProcessorSettings
from tests.deploy import expected
from tests.deploy.chart import (
    Manifest,
    component,
    containers,
    env_names,
    env_value,
    of_kind,
    render,
    values_file,
)

EVERY_WORKER = ("workers.synthetic.enabled=true",)
"""The defaults leave the model-free synthetic workload off; these tests want every one."""


def _deployments(values: str) -> dict[str, Manifest]:
    return {component(d): d for d in of_kind(render(values, EVERY_WORKER), "Deployment")}


def _container(deployment: Manifest) -> Manifest:
    (only,) = containers(deployment)
    return only


def _configmap(values: str) -> dict[str, str]:
    (config,) = [
        m
        for m in of_kind(render(values, EVERY_WORKER), "ConfigMap")
        if m["metadata"]["name"].endswith("-config")
    ]
    data: dict[str, str] = config.get("data") or {}
    return data


def _exec(probe: Manifest) -> list[str]:
    command: list[str] = probe["exec"]["command"]
    assert command[:2] == ["python", "/opt/genstream/probe.py"], command
    return command[2:]


@pytest.mark.parametrize("values", ["default", "production"])
def test_every_service_is_a_deployment_running_its_command(values: str) -> None:
    deployments = _deployments(values)
    services = expected.services()
    assert set(deployments) == {service.name for service in services}
    for service in services:
        assert tuple(_container(deployments[service.name])["command"]) == service.command


def test_every_console_script_runs_somewhere() -> None:
    manifests = render("production", EVERY_WORKER)
    programs = {
        container["command"][0]
        for kind in ("Deployment", "Job")
        for manifest in of_kind(manifests, kind)
        for container in containers(manifest)
    }
    assert expected.console_scripts() - programs == set()
    bootstrap = [c for job in of_kind(manifests, "Job") for c in containers(job)]
    assert ["genstream", "infra", "bootstrap"] in [c["command"] for c in bootstrap]


@pytest.mark.parametrize("values", ["default", "production"])
def test_services_get_the_settings_infra_services_sh_gives_them(values: str) -> None:
    deployments = _deployments(values)
    for service in expected.services():
        container = _container(deployments[service.name])
        for name, value in service.env.items():
            if name in expected.LOCAL_ONLY:
                assert env_value(container, name) in (None, "false"), (service.name, name)
            elif name.endswith("_METRICS_PORT"):
                # One machine needs a port per service; a pod has its own loopback.
                port = str(values_file()["metricsPort"])
                assert env_value(container, name) == port, (service.name, name)
            else:
                assert env_value(container, name) == value, (service.name, name)
    for local in expected.LOCAL_ONLY:
        assert local not in _configmap(values)


def test_the_values_name_every_setting_of_every_service_and_nothing_else() -> None:
    values = values_file()
    config = set(values["config"])
    secrets = set(values["secrets"]["values"])
    settings = expected.all_settings()
    assert config & secrets == set()
    assert sorted(set(settings) - config - secrets) == [], "settings the chart lacks"
    assert sorted((config | secrets) - set(settings)) == [], "chart entries no service reads"
    assert sorted(name for name, secret in settings.items() if secret) == sorted(secrets)
    assert expected.example_settings() - (config | secrets) == set()


@pytest.mark.parametrize("values", ["default", "production"])
def test_each_container_sets_only_what_its_service_reads_and_secrets_stay_secret(
    values: str,
) -> None:
    manifests = render(values, EVERY_WORKER)
    secret_names = {name for name, secret in expected.all_settings().items() if secret}
    assert secret_names.isdisjoint(_configmap(values))
    models = {
        service.name: expected.settings_for(service.program) for service in expected.services()
    }
    models.update(expected.JOBS)
    for kind in ("Deployment", "Job"):
        for manifest in of_kind(manifests, kind):
            model = models[component(manifest)]
            for container in containers(manifest):
                readable = {*expected.settings_env(model), *expected.TRACING_ENV}
                assert env_names(container) - readable == set(), component(manifest)
                for entry in container.get("env", []):
                    if entry["name"] in secret_names:
                        assert "secretKeyRef" in entry.get("valueFrom", {}), entry


def test_tracing_is_off_unless_an_endpoint_is_given_then_every_service_samples() -> None:
    def tracing(manifests: tuple[dict[str, Any], ...]) -> dict[str, dict[str, str | None]]:
        return {
            component(manifest): {name: env_value(c, name) for name in expected.TRACING_ENV}
            for manifest in of_kind(manifests, "Deployment")
            for c in containers(manifest)
        }

    assert all(set(values.values()) == {None} for values in tracing(render("production")).values())
    endpoint = "http://jaeger-collector.observability:4318"
    traced = tracing(render("production", (*EVERY_WORKER, f"tracing.endpoint={endpoint}")))
    assert {"api", "processors", "projection", "worker-image"} <= set(traced)
    assert all(
        values
        == {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
        }
        for values in traced.values()
    ), traced


def test_the_api_probes_and_serves_where_the_code_listens() -> None:
    paths = {route.path for route in health_router.routes}  # type: ignore[attr-defined]
    assert {"/healthz", "/readyz"} <= paths
    manifests = render("production")
    api = _container(_deployments("production")["api"])
    (port,) = api["ports"]
    assert env_value(api, "GENSTREAM_API__PORT") == str(port["containerPort"])
    assert env_value(api, "GENSTREAM_API__HOST") == "0.0.0.0"  # noqa: S104 - the pod's address
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    (service,) = [s for s in of_kind(manifests, "Service") if component(s) == "api"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [port["name"]]
    (hpa,) = of_kind(manifests, "HorizontalPodAutoscaler")
    assert (
        hpa["spec"]["scaleTargetRef"]["name"]
        == _deployments("production")["api"]["metadata"]["name"]
    )
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]


def test_other_services_probe_their_own_dependencies_and_metrics() -> None:
    deployments = _deployments("production")
    for service in expected.services():
        if service.name == "api":
            continue
        container = _container(deployments[service.name])
        checks = set(_exec(container["readinessProbe"]))
        assert checks == expected.dependencies(service.program), service
        port_setting = expected.metrics_port_setting(service.program)
        if port_setting is None:
            assert "livenessProbe" not in container, service.name
            continue
        port = env_value(container, port_setting)
        assert port is not None, (service.name, port_setting)
        assert _exec(container["livenessProbe"]) == ["http", f"http://127.0.0.1:{port}/metrics"]


def test_every_deployment_has_a_disruption_budget() -> None:
    manifests = render("production", EVERY_WORKER)
    budgets = {component(p): p for p in of_kind(manifests, "PodDisruptionBudget")}
    for deployment in of_kind(manifests, "Deployment"):
        budget = budgets[component(deployment)]
        assert (
            budget["spec"]["selector"]["matchLabels"]
            == deployment["spec"]["selector"]["matchLabels"]
        )


def test_every_service_connects_as_its_own_principal() -> None:
    deployments = _deployments("production")
    for service in expected.services():
        container = _container(deployments[service.name])
        assert env_value(container, "GENSTREAM_KAFKA__SASL_USERNAME") == service.name
        assert service.name in PRINCIPALS
        (password,) = [e for e in container["env"] if e["name"] == "GENSTREAM_KAFKA__SASL_PASSWORD"]
        assert password["valueFrom"]["secretKeyRef"] == {"name": service.name, "key": "password"}
    users = of_kind(render("production", EVERY_WORKER), "KafkaUser")
    names = {user["metadata"]["name"] for user in users}
    assert {service.name for service in expected.services()} <= names


def test_the_topic_catalog_is_the_code_s() -> None:
    catalog = {t["name"]: t for t in values_file()["kafka"]["topics"]}
    assert set(catalog) == {spec.name for spec in ALL_TOPICS}
    for spec in ALL_TOPICS:
        assert catalog[spec.name]["partitions"] == spec.partitions, spec.name
        assert catalog[spec.name]["config"] == spec.config(), spec.name
    topics = of_kind(render("production"), "KafkaTopic")
    assert {t["spec"]["topicName"]: t["spec"]["partitions"] for t in topics} == {
        spec.name: spec.partitions for spec in ALL_TOPICS
    }


def _scaled(values: str, overrides: tuple[str, ...] = EVERY_WORKER) -> dict[str, Manifest]:
    return {component(s): s for s in of_kind(render(values, overrides), "ScaledObject")}


def _lag_triggers(scaled: Manifest) -> list[dict[str, Any]]:
    triggers: list[dict[str, Any]] = scaled["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"kafka"}
    return triggers


EXPECTED_GROUPS = {
    **{f"worker-{w.value}": worker_group(w) for w in Workload},
    "processors": ProcessorSettings.model_fields["processors_app_id"].default,
    "projection": ProjectionSettings.model_fields["projection_group"].default,
}
"""Every consumer group whose lag scales its service: one per workload, Faust's, the
projection's."""


@pytest.mark.parametrize("values", ["default", "production"])
def test_every_lag_scaled_group_is_the_one_its_service_joins(values: str) -> None:
    assert set(values_file()["workers"]) == {w.value for w in Workload}
    scaled = _scaled(values)
    assert set(scaled) == set(EXPECTED_GROUPS)
    for name, objects in scaled.items():
        principal = PRINCIPALS[name]
        assert objects["spec"]["scaleTargetRef"]["name"] == f"genstream-{name}"
        for trigger in _lag_triggers(objects):
            metadata = trigger["metadata"]
            assert metadata["consumerGroup"] == EXPECTED_GROUPS[name]
            assert metadata["consumerGroup"] in principal.groups
            assert metadata["topic"] in principal.reads
            assert metadata["allowIdleConsumers"] == "false"
        cap = min(topic_by_name(t["metadata"]["topic"]).partitions for t in _lag_triggers(objects))
        assert 1 <= objects["spec"]["maxReplicaCount"] <= cap, name


@pytest.mark.parametrize("values", ["default", "production"])
def test_workers_scale_on_each_tier_with_pro_weighing_most(values: str) -> None:
    scaled = _scaled(values)
    for workload in Workload:
        triggers = _lag_triggers(scaled[f"worker-{workload.value}"])
        assert [t["metadata"]["topic"] for t in triggers] == list(tier_topics(workload))
        assert [t["name"] for t in triggers] == [tier.value for tier in Tier]
        thresholds = [int(t["metadata"]["lagThreshold"]) for t in triggers]
        assert thresholds == sorted(thresholds), (workload, thresholds)
        assert len(set(thresholds)) == len(thresholds), (workload, thresholds)


def test_the_partition_cap_holds_whatever_the_values_ask() -> None:
    greedy = (
        *EVERY_WORKER,
        "processors.scaling.maxReplicas=100",
        "projection.scaling.maxReplicas=100",
        "workers.image.maxReplicas=100",
    )
    caps = {name: s["spec"]["maxReplicaCount"] for name, s in _scaled("default", greedy).items()}
    assert caps["processors"] == topic_by_name("jobs.requested").partitions
    assert caps["projection"] == topic_by_name("credits.ledger").partitions
    assert caps["worker-image"] == topic_by_name("jobs.image.pro").partitions


def test_lag_scaling_with_sasl_authenticates_as_the_group_s_principal() -> None:
    manifests = render("production", EVERY_WORKER)
    auths = {a["metadata"]["name"]: a for a in of_kind(manifests, "TriggerAuthentication")}
    for name, objects in _scaled("production").items():
        for trigger in _lag_triggers(objects):
            assert trigger["metadata"]["sasl"] == "scram_sha512"
            auth = auths[trigger["authenticationRef"]["name"]]
            refs = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
            assert refs["password"]["name"] == name
            assert refs["username"]["key"] == name
