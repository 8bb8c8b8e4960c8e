"""The principal table: it covers every topic, grants only what the code uses, and its ACLs,
credentials and Faust settings are derived from it correctly."""

from __future__ import annotations

import inspect
import re
import stat
from pathlib import Path

import faust
import pytest
from pydantic import SecretStr, ValidationError

from api.projection.main import ProjectionSettings
from api.read_settings import ReadSettings
from api.settings import JobsSettings
from api.webhooks.settings import WebhookSettings
from contracts import (
    ALL_TOPICS,
    CREDITS_LEDGER,
    TIER_TOPICS,
    Event,
    JobQueued,
    TopicSpec,
    Workload,
    worker_group,
)
from contracts.credits import CREDIT_EVENT_TYPES
from contracts.jobs import JOB_EVENT_TYPES
from genstream.kafka import KafkaSettings
from genstream.kafka.acls import (
    acl_bindings,
    as_principal,
    ensure_credentials,
    read_credentials,
)
from genstream.kafka.principals import ADMIN, PRINCIPALS, is_prefix, principal, stem
from genstream.redrive import redrive
from gpu_consumers.retry_relay import RETRY_RELAY_GROUP
from gpu_consumers.topology import WorkerTopology
from stream_processors.settings import ProcessorSettings
from stream_processors.topology import Topology

ROOT = Path(__file__).resolve().parents[3]
_SERVICE_PACKAGES = ("api", "producers", "stream_processors", "gpu_consumers", "genstream")
_SUPER_USER_GROUPS = frozenset({"genstream-bootstrap"})
"""Groups only ``genstream infra bootstrap`` names, which runs as the brokers' super user."""


def _writers(topic: str) -> set[str]:
    return {p.name for p in PRINCIPALS.values() if topic in p.writes}


def _readers(topic: str) -> set[str]:
    return {p.name for p in PRINCIPALS.values() if topic in p.reads}


def _covers(names: frozenset[str], name: str) -> bool:
    return any(
        name.startswith(stem(granted)) if is_prefix(granted) else name == granted
        for granted in names
    )


@pytest.mark.parametrize("spec", ALL_TOPICS, ids=lambda spec: spec.name)
def test_every_contract_topic_has_a_writer_and_a_reader(spec: TopicSpec) -> None:
    name = spec.name
    assert _writers(name), f"no principal writes {name}: add it to genstream/kafka/principals.py"
    assert _readers(name), f"no principal reads {name}: add it to genstream/kafka/principals.py"


def test_the_table_names_only_contract_topics() -> None:
    contract = {spec.name for spec in ALL_TOPICS}
    for grant in PRINCIPALS.values():
        assert grant.reads | grant.writes <= contract, grant.name
        assert grant.name != ADMIN


def test_only_the_processors_and_the_outbox_write_credits() -> None:
    # The outbox publishes sign-up grants and purchases; a redrive sends parked records back.
    assert _writers(CREDITS_LEDGER.name) == {"processors", "outbox-relay", "redrive"}
    for spec in TIER_TOPICS.values():
        assert _writers(spec.name) == {"processors", "retry-relay", "redrive"}


def test_only_workers_and_processors_write_the_lifecycle() -> None:
    workers = {f"worker-{workload.value}" for workload in Workload}
    assert _writers("jobs.lifecycle") == {"processors", "redrive", *workers}


def test_the_api_writes_commands_only() -> None:
    api = principal("api")
    assert api.writes == {JobsSettings.model_fields["requested_topic"].default}
    assert api.reads == {ReadSettings.model_fields["progress_topic"].default}


def test_the_processors_are_allowed_what_their_topology_uses() -> None:
    topology, grant = Topology(), principal("processors")
    assert {spec.name for spec in topology.account_inputs} | {
        topology.lifecycle.name
    } == grant.reads
    destinations = {
        spec.name for model in (*JOB_EVENT_TYPES, *CREDIT_EVENT_TYPES) for spec in _to(model)
    }
    assert destinations <= grant.writes
    assert topology.requested.name in grant.writes  # requests sent round while credits wait
    assert topology.deadletter.name in grant.writes
    app_id = ProcessorSettings.model_fields["processors_app_id"].default
    assert grant.groups == {app_id}
    assert _covers(grant.owns, f"{app_id}-accounts-changelog")
    assert _covers(grant.transactional_ids, f"{app_id}-0-3")  # Faust: <group>-<tpg>-<partition>
    assert all(_covers(grant.watches, worker_group(workload)) for workload in Workload)


def _to(model: type[Event]) -> tuple[TopicSpec, ...]:
    """Where the processors write an event of ``model`` (they look at its type, and at a
    dispatch's topic)."""
    tier = next(iter(TIER_TOPICS.values())).name
    sample = model.model_construct(topic=tier) if model is JobQueued else model.model_construct()
    try:
        return Topology().destinations(sample)
    except ValueError:  # not an event the processors write
        return ()


@pytest.mark.parametrize("workload", list(Workload))
def test_each_workload_reads_its_own_tiers_only(workload: Workload) -> None:
    grant, topology = principal(f"worker-{workload.value}"), WorkerTopology(workload)
    tiers = {spec.name for spec in topology.tiers.values()}
    assert tiers <= grant.reads
    assert not (grant.reads & ({spec.name for spec in TIER_TOPICS.values()} - tiers))
    assert {topology.lifecycle.name, topology.requested.name} <= grant.reads
    assert grant.writes == {
        topology.lifecycle.name,
        topology.progress.name,
        topology.retry.name,
        topology.deadletter.name,
    }
    assert worker_group(workload) in grant.groups


def test_group_defaults_of_the_services_are_in_the_table() -> None:
    assert ProjectionSettings.model_fields["projection_group"].default in (
        principal("projection").groups
    )
    assert WebhookSettings.model_fields["group_id"].default in principal("webhooks").groups
    assert RETRY_RELAY_GROUP in principal("retry-relay").groups
    assert inspect.signature(redrive).parameters["group_id"].default in (
        principal("redrive").groups
    )


def test_every_group_named_in_the_code_belongs_to_a_principal() -> None:
    pattern = re.compile(r'"group\.id":\s*(f?)"([^"{]*)')
    every = frozenset().union(*(p.groups for p in PRINCIPALS.values()))
    named = []
    for package in _SERVICE_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for formatted, literal in pattern.findall(path.read_text()):
                named.append(literal)
                if literal in _SUPER_USER_GROUPS:
                    continue
                granted = {g for g in every if (is_prefix(g) if formatted else not is_prefix(g))}
                assert _covers(frozenset(granted), literal), f"{path}: group {literal!r}"
    assert "genstream-worker-control" in named  # the scan found the code's groups


def test_the_api_principals_acls_are_exactly_its_needs() -> None:
    rendered = sorted(str(binding) for binding in acl_bindings([principal("api")]))
    assert rendered == [
        "AclBinding(ResourceType.GROUP,genstream-api-progress-,ResourcePatternType.PREFIXED,"
        "User:api,*,AclOperation.READ,AclPermissionType.ALLOW)",
        "AclBinding(ResourceType.TOPIC,jobs.progress,ResourcePatternType.LITERAL,"
        "User:api,*,AclOperation.READ,AclPermissionType.ALLOW)",
        "AclBinding(ResourceType.TOPIC,jobs.requested,ResourcePatternType.LITERAL,"
        "User:api,*,AclOperation.WRITE,AclPermissionType.ALLOW)",
    ]


def test_credentials_are_generated_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "kafka" / "credentials"
    assert ensure_credentials(path) == [ADMIN, *PRINCIPALS]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = read_credentials(path)
    assert set(first) == {ADMIN, *PRINCIPALS}
    assert all(re.fullmatch(r"[0-9a-f]{48}", s.get_secret_value()) for s in first.values())
    assert ensure_credentials(path) == []
    assert ensure_credentials(path, [*first, "newcomer"]) == ["newcomer"]
    again = read_credentials(path)
    assert {n: s.get_secret_value() for n, s in again.items() if n in first} == {
        n: s.get_secret_value() for n, s in first.items()
    }


def test_a_principal_connects_over_scram() -> None:
    settings = as_principal(KafkaSettings(), "api", {"api": SecretStr("pw")})
    config = settings.librdkafka()
    assert config["security.protocol"] == "SASL_PLAINTEXT"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("api", "pw")


def test_faust_gets_the_same_servers_and_sasl_user() -> None:
    plain = KafkaSettings(bootstrap_servers="127.0.0.1:9092, 127.0.0.1:9094").faust_options()
    assert plain == {
        "broker": ["kafka://127.0.0.1:9092", "kafka://127.0.0.1:9094"],
        "broker_credentials": None,
    }
    secured = as_principal(KafkaSettings(), "processors", {"processors": SecretStr("pw")})
    credentials = secured.faust_options()["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("processors", "pw")
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.protocol.value == "SASL_PLAINTEXT"


def test_sasl_without_a_user_is_refused() -> None:
    with pytest.raises(ValidationError, match="needs sasl_mechanism"):
        KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512")
