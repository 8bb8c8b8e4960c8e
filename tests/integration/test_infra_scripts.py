"""The infra scripts themselves: idempotent start, clean stop, clear errors.

These run a second, private stack (own data directory and ports) beside the one the other
tests use, so stopping it cannot disturb them. The three-broker tests share one secured
cluster (SASL/SCRAM, an ACL per principal), started once for the module.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, PartitionMetadata, ResourceType
from pydantic import SecretStr

from contracts import (
    CREDITS_LEDGER,
    JOBS_LIFECYCLE,
    JOBS_REQUESTED,
    CreditsGranted,
    Envelope,
    JobCancelRequested,
    JobStarted,
)
from genstream.kafka import (
    DeliveryError,
    EventConsumer,
    KafkaSettings,
    ensure_topics,
    wait_for_brokers,
)
from genstream.kafka.acls import as_principal, stack_credentials
from genstream.kafka.principals import ADMIN
from producers import EventProducer
from tests.polling import poll_until

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "infra" / "stack.sh"
KAFKA = ROOT / "infra" / "kafka.sh"
KAFKA_TOOLS = ROOT / "infra" / "kafka-tools.sh"
THREE_BROKERS = "127.0.0.1:29092,127.0.0.1:29094,127.0.0.1:29096"


def _run(
    script: Path, *args: str, env: dict[str, str], timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(script), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _processes_mentioning(needle: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


JAEGER_PORTS = {
    "GENSTREAM_JAEGER_UI_PORT": "26686",
    "GENSTREAM_JAEGER_QUERY_GRPC_PORT": "26685",
    "GENSTREAM_JAEGER_OTLP_GRPC_PORT": "24317",
    "GENSTREAM_JAEGER_OTLP_HTTP_PORT": "24318",
    "GENSTREAM_JAEGER_HEALTH_PORT": "23133",
}


def _private_env(var_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "GENSTREAM_VAR_DIR": str(var_dir),
        "GENSTREAM_KAFKA_PORT": "19092",
        "GENSTREAM_KAFKA_HEAP": "256m",
        "GENSTREAM_PG_PORT": "25442",
        "GENSTREAM_S3_PORT": "19000",
        "GENSTREAM_S3_CONSOLE_PORT": "19001",
        "GENSTREAM_API_PORT": "18000",
        **JAEGER_PORTS,
    }
    for name in list(env):
        if name.startswith("GENSTREAM_") and "__" in name:
            del env[name]
    return env


@pytest.fixture
def private_stack(unique: str) -> Iterator[tuple[dict[str, str], Path]]:
    # Inside the checkout, not /tmp: PostgreSQL's own user must be able to reach the directory.
    var_dir = ROOT / "var" / "test-stacks" / unique
    var_dir.mkdir(parents=True)
    env = _private_env(var_dir)
    try:
        yield env, var_dir
    finally:
        _run(STACK, "down", env=env)
        shutil.rmtree(var_dir, ignore_errors=True)


def _pids(var_dir: Path) -> dict[str, str]:
    pids = {p.stem: p.read_text().strip() for p in (var_dir / "run").glob("*.pid")}
    postmaster = var_dir / "postgres" / "data" / "postmaster.pid"
    if postmaster.exists():
        pids["postgres"] = postmaster.read_text().splitlines()[0]
    return pids


def test_up_twice_then_down_leaves_nothing(private_stack: tuple[dict[str, str], Path]) -> None:
    env, var_dir = private_stack
    first = _run(STACK, "up", env=env)
    assert first.returncode == 0, first.stderr
    assert "stack ready" in first.stderr
    running = _pids(var_dir)
    assert set(running) == {"kafka-1", "postgres", "s3", "jaeger"}

    second = _run(STACK, "up", env=env)
    assert second.returncode == 0, second.stderr
    assert "0 created" in second.stdout  # topics already there
    assert _pids(var_dir) == running

    status = _run(STACK, "status", env=env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "kafka node 1: running on 127.0.0.1:19092" in status.stdout
    assert "jaeger: running, UI and query API on http://127.0.0.1:26686" in status.stdout

    down = _run(STACK, "down", env=env)
    assert down.returncode == 0, down.stderr
    assert _processes_mentioning(str(var_dir)) == []
    ports = (19092, 19093, 25442, 19000, 19001, *map(int, JAEGER_PORTS.values()))
    assert not any(_port_open(port) for port in ports)
    stopped = _run(STACK, "status", env=env)
    assert stopped.returncode != 0
    assert "kafka node 1: stopped" in stopped.stdout


def test_taken_port_is_reported(private_stack: tuple[dict[str, str], Path]) -> None:
    env, _ = private_stack
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = _run(
            ROOT / "infra" / "s3.sh", "start", env={**env, "GENSTREAM_S3_PORT": str(port)}
        )
    assert result.returncode != 0
    assert f"port {port} on 127.0.0.1 is taken" in result.stderr


def test_missing_java_is_reported(
    private_stack: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, _ = private_stack
    # A PATH with the shell's basic tools but no java, and an empty cache so Kafka must be fetched.
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("bash", "dirname", "mkdir", "cat", "date", "sha256sum", "cut", "rm"):
        located = shutil.which(tool)
        assert located is not None
        (tools / tool).symlink_to(located)
    result = _run(
        ROOT / "infra" / "setup.sh",
        "kafka",
        env={**env, "PATH": str(tools), "GENSTREAM_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode != 0
    assert "java is not installed" in result.stderr


def test_failed_download_is_reported(
    private_stack: tuple[dict[str, str], Path], unique: str
) -> None:
    env, _ = private_stack
    version = f"0.0.0-missing-{unique}"
    try:
        result = _run(
            ROOT / "infra" / "setup.sh", "kafka", env={**env, "GENSTREAM_KAFKA_VERSION": version}
        )
    finally:
        shutil.rmtree(ROOT / ".cache" / "kafka" / version, ignore_errors=True)
    assert result.returncode != 0
    assert f"downloading Kafka {version} from Maven Central failed" in result.stderr


@pytest.fixture(scope="module")
def three_brokers() -> Iterator[tuple[dict[str, str], Path]]:
    """A secured three-broker cluster started by infra/kafka.sh, with the commands and ledger
    topics created by its super user (as ``genstream infra bootstrap`` does) while all three
    brokers are up."""
    var_dir = ROOT / "var" / "test-stacks" / f"kafka3-{uuid.uuid4().hex[:12]}"
    var_dir.mkdir(parents=True)
    env = {
        **_private_env(var_dir),
        "GENSTREAM_KAFKA_BROKERS": "3",
        "GENSTREAM_KAFKA_PORT": "29092",
    }
    try:
        started = _run(KAFKA, "start", env=env)
        assert started.returncode == 0, started.stderr
        assert "kafka ACLs:" in started.stderr
        admin = _as(var_dir, ADMIN)
        assert wait_for_brokers(admin, expected=3, timeout_s=60) == 3
        ensure_topics(admin, [JOBS_REQUESTED, CREDITS_LEDGER])
        yield env, var_dir
    finally:
        _run(KAFKA, "stop", env=env)
        left = _processes_mentioning(f"{var_dir}/kafka")
        shutil.rmtree(var_dir, ignore_errors=True)
    assert left == []


def _as(var_dir: Path, principal: str, password: str | None = None) -> KafkaSettings:
    """How ``principal`` reaches the three brokers, with its password or ``password``."""
    credentials = stack_credentials(var_dir)
    if password is not None:
        credentials[principal] = SecretStr(password)
    base = KafkaSettings(
        bootstrap_servers=THREE_BROKERS, replication_factor=3, min_insync_replicas=2
    )
    return as_principal(base, principal, credentials)


def _granted(user_id: str) -> Envelope[CreditsGranted]:
    grant = CreditsGranted(amount=5, reason="test", idempotency_key=f"grant:{user_id}")
    return Envelope.wrap(grant, user_id=user_id, source="genstream/tests")


def test_three_brokers_let_each_principal_write_only_its_own_topics(
    three_brokers: tuple[dict[str, str], Path], unique: str
) -> None:
    _, var_dir = three_brokers
    user = f"user-{unique}"
    with EventProducer(settings=_as(var_dir, "api")) as api:
        with pytest.raises(
            DeliveryError, match=r"credits\.ledger: Broker: Topic authorization failed"
        ):
            api.send_and_wait(CREDITS_LEDGER, _granted(user))
        delivered = api.send_and_wait(JOBS_REQUESTED, _cancel(user))
        assert delivered.topic == JOBS_REQUESTED.name
    with EventProducer(settings=_as(var_dir, "processors")) as processors:
        assert processors.send_and_wait(CREDITS_LEDGER, _granted(user)).offset >= 0


def test_kafkas_own_tools_reach_the_secured_brokers_as_their_admin(
    three_brokers: tuple[dict[str, str], Path],
) -> None:
    env, var_dir = three_brokers
    described = _run(
        KAFKA_TOOLS, "kafka-topics.sh", "--describe", "--topic", JOBS_REQUESTED.name, env=env
    )
    assert described.returncode == 0, described.stderr
    summary = described.stdout.splitlines()[0]
    assert f"PartitionCount: {JOBS_REQUESTED.partitions}" in summary
    assert "ReplicationFactor: 3" in summary
    # The client configuration with the admin's password lived only as long as the call.
    assert list((var_dir / "run").glob("kafka-tools.*")) == []


def test_three_brokers_refuse_bad_credentials(
    three_brokers: tuple[dict[str, str], Path], unique: str
) -> None:
    _, var_dir = three_brokers
    errors: list[KafkaError] = []
    impostor = _as(var_dir, "api", password="not-the-password")
    producer = Producer({**impostor.producer_config(), "error_cb": errors.append, "log_level": 0})
    producer.produce(JOBS_REQUESTED.name, value=b"{}", key=unique.encode())

    def refused() -> bool:
        producer.poll(0.1)
        return any(error.code() == KafkaError._AUTHENTICATION for error in errors)

    poll_until(refused, timeout_s=30, what=lambda: f"an authentication error; got {errors}")
    assert len(producer) == 1  # still waiting: nothing was written
    producer.purge()


def test_three_brokers_keep_acks_all_writes_through_one_loss(
    three_brokers: tuple[dict[str, str], Path], unique: str
) -> None:
    # Last of the module's three-broker tests: it leaves broker 3 dead.
    env, var_dir = three_brokers
    settings = _as(var_dir, ADMIN)
    spec = JOBS_LIFECYCLE.prefixed(f"test.{unique}.")
    ensure_topics(settings, [spec])

    admin = AdminClient(settings.librdkafka())
    partitions = _partitions_once_known(admin, spec.name, expected=spec.partitions)
    assert {len(p.replicas) for p in partitions.values()} == {3}
    resource = ConfigResource(ResourceType.TOPIC, spec.name)
    config = admin.describe_configs([resource])[resource].result()
    assert config["min.insync.replicas"].value == "2"

    job = f"job-{unique}"
    with EventProducer(settings=settings) as producer:
        producer.send_and_wait(spec, _started(job, attempt=1))
        killed = _run(KAFKA, "kill", "3", env=env)
        assert killed.returncode == 0, killed.stderr
        # Two replicas remain in sync, which is what min.insync.replicas=2 asks of acks=all.
        producer.send_and_wait(spec, _started(job, attempt=2), timeout_s=60)

    with EventConsumer(
        settings=settings, group_id=f"test-{unique}", topics=[spec.name]
    ) as consumer:
        events = consumer.drain(until=lambda got: len(got) >= 2, timeout_s=60)
    assert [event.envelope.data.attempt for event in events] == [1, 2]


def _partitions_once_known(
    admin: AdminClient, topic: str, *, expected: int, timeout_s: float = 30.0
) -> dict[int, PartitionMetadata]:
    """A just-created topic reaches every broker's metadata a moment after the create returns."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = admin.list_topics(topic, timeout=10).topics.get(topic)
        partitions = found.partitions if found is not None and found.error is None else {}
        if len(partitions) == expected and all(p.leader >= 0 for p in partitions.values()):
            return partitions
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic}: {len(partitions)}/{expected} partitions known")
        time.sleep(0.1)


def _started(job_id: str, *, attempt: int) -> Envelope[JobStarted]:
    return Envelope.wrap(
        JobStarted(job_id=job_id, worker_id="w-1", attempt=attempt),
        user_id="user-1",
        source="genstream/tests",
    )


def _cancel(user_id: str) -> Envelope[JobCancelRequested]:
    command = JobCancelRequested(job_id=f"job-{user_id}", reason="user")
    return Envelope.wrap(command, user_id=user_id, source="genstream/tests")
