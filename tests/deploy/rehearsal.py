"""A scale-out rehearsal on one machine: what the chart runs on a cluster, as processes.

Three brokers (the secured stack), two stream processors, two projections, three synthetic
workers and two workers of every other workload, each a process of its own in its group, as
the pods of a Deployment would be; under load, one of each is stopped with SIGTERM and
started again, one after another, as a rolling restart replaces pods, and one broker is
restarted the same way. Then it counts what the guarantees forbid (lost jobs, two ends, a
second settlement, ledgers and read model apart, a rebuild that differs) with the fault
run's own checks (``tests/chaos/driver.py``), and reports throughput and consumer lag.

Slow (minutes, both cores): not part of ``make test``. Run it with
``.venv/bin/python -m tests.deploy.rehearsal [--jobs N --rate R --users U]``, or
``make chaos``, which runs ``tests/deploy/test_deploy_rehearsal.py`` too. It writes
``var/rehearsal/report.json``.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from contracts import (
    CREDITS_LEDGER,
    JOB_OUTCOMES,
    JOBS_LIFECYCLE,
    JOBS_REQUESTED,
    USERS_PLANS,
    JobCancelled,
    JobCompleted,
    JobExpired,
    JobFailed,
    JobRejected,
    TopicSpec,
    Workload,
    tier_topics,
    topic_by_name,
    worker_group,
)
from contracts.codec import HEADER_ID, HEADER_TYPE
from tests.chaos.driver import ROOT, ChaosStack, Fault, run_chaos, write_report

REPORT = ROOT / "var" / "rehearsal" / "report.json"
PORTS = {
    # Apart from the fault run's (tests/chaos/driver.py), so that both can run at once.
    "GENSTREAM_PG_PORT": "25662",
    "GENSTREAM_S3_PORT": "19600",
    "GENSTREAM_S3_CONSOLE_PORT": "19601",
    "GENSTREAM_METRICS_PORT_BASE": "19800",
    "GENSTREAM_JAEGER_UI_PORT": "26986",
    "GENSTREAM_JAEGER_QUERY_GRPC_PORT": "26985",
    "GENSTREAM_JAEGER_OTLP_GRPC_PORT": "24617",
    "GENSTREAM_JAEGER_OTLP_HTTP_PORT": "24618",
    "GENSTREAM_JAEGER_HEALTH_PORT": "23433",
}
EXTRA_METRICS_PORT = 19850
"""The extra instances' metrics ports count up from here (the stack's end at base + 9)."""


@dataclass(frozen=True)
class Instance:
    """One more process of a service, beside the one infra/services.sh starts."""

    name: str
    principal: str
    program: str
    env: dict[str, str] = field(default_factory=dict)


def extra_instances() -> list[Instance]:
    worker = {"GENSTREAM_WORKER_RUN_RETRY_RELAY": "false"}
    extras = [
        Instance(
            "processors-2",
            "processors",
            "genstream-processors",
            # Faust keeps a directory per process.
            {"GENSTREAM_PROCESSORS_DATA_DIR": "processors-2"},
        ),
        Instance("projection-2", "projection", "genstream-projection"),
        *(
            Instance(
                f"worker-synthetic-{n}",
                "worker-synthetic",
                "genstream-worker",
                {**worker, "GENSTREAM_WORKER_WORKLOAD": "synthetic"},
            )
            for n in (2, 3)
        ),
        *(
            Instance(
                f"worker-{w.value}-2",
                f"worker-{w.value}",
                "genstream-worker",
                {**worker, "GENSTREAM_WORKER_WORKLOAD": w.value},
            )
            for w in Workload
            if w is not Workload.SYNTHETIC
        ),
    ]
    metrics = {
        "genstream-processors": "GENSTREAM_PROCESSORS_METRICS_PORT",
        "genstream-projection": "GENSTREAM_PROJECTION_METRICS_PORT",
        "genstream-worker": "GENSTREAM_WORKER_METRICS_PORT",
    }
    return [
        Instance(e.name, e.principal, e.program, {**e.env, metrics[e.program]: str(port)})
        for port, e in enumerate(extras, start=EXTRA_METRICS_PORT)
    ]


_START = """
source "$GENSTREAM_ROOT_DIR/infra/lib.sh"
set -a; . "$GENSTREAM_STACK_ENV"; set +a
use_kafka_principal "$1"
name=$2; shift 2
cd "$GENSTREAM_ROOT_DIR" && start_daemon "$name" "$GENSTREAM_LOG_DIR/$name.log" "$@"
"""


_STACK_UP = """
source "$GENSTREAM_ROOT_DIR/infra/lib.sh"
load_secrets
pids=()
for name in kafka postgres s3 jaeger; do
  [[ -x $GENSTREAM_ROOT_DIR/infra/$name.sh ]] || continue
  "$GENSTREAM_ROOT_DIR/infra/$name.sh" start & pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || exit 1; done
eval "$(sed -n '/^write_stack_env() {/,/^}/p' "$GENSTREAM_ROOT_DIR/infra/stack.sh")"
write_stack_env
set -a && . "$GENSTREAM_STACK_ENV" && set +a && use_kafka_principal admin
cd "$GENSTREAM_ROOT_DIR" && "$(python_bin)" -m genstream.cli infra bootstrap
"""


class RehearsalStack(ChaosStack):
    """The fault run's private stack, with more instances of the scaled services."""

    def __init__(self, name: str) -> None:
        super().__init__(name, api_port=18300, kafka_port=28292)
        self.env.update(PORTS)
        self.extras = extra_instances()
        self._models: str | None = None

    def up(self) -> None:
        # infra/stack.sh up less its first step, `infra/setup.sh all`: what it installs is
        # here already, and a rebuild of something (the web app, a Go tool) must not race
        # another one running from the same checkout.
        subprocess.run(
            ["bash", "-c", _STACK_UP],
            env={**self.env, "GENSTREAM_ROOT_DIR": str(ROOT)},
            check=True,
            timeout=600,
        )
        self.restart_services()
        for instance in self.extras:
            self.start(instance)

    def down(self, *, remove: bool = True) -> None:
        for instance in self.extras:
            self.stop(instance.name)
        super().down(remove=remove)

    def _worker_models(self) -> str:
        # The tiny random-weight models infra/services.sh built, as it hands them over.
        if self._models is None:
            done = subprocess.run(
                [
                    str(ROOT / ".venv" / "bin" / "python"),
                    "-m",
                    "gpu_consumers.tiny_models",
                    str(self.var_dir / "models" / "tiny"),
                ],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
                timeout=600,
            )
            self._models = done.stdout.strip()
        return self._models

    def start(self, instance: Instance) -> None:
        env = dict(instance.env)
        if "GENSTREAM_PROCESSORS_DATA_DIR" in env:
            env["GENSTREAM_PROCESSORS_DATA_DIR"] = str(
                self.var_dir / env["GENSTREAM_PROCESSORS_DATA_DIR"]
            )
        if instance.program == "genstream-worker":
            env["GENSTREAM_WORKER_MODELS"] = self._worker_models()
        command = [
            "env",
            *(f"{key}={value}" for key, value in env.items()),
            str(ROOT / ".venv" / "bin" / instance.program),
        ]
        subprocess.run(
            ["bash", "-c", _START, "start", instance.principal, instance.name, *command],
            env={**self.env, "GENSTREAM_ROOT_DIR": str(ROOT)},
            check=True,
            timeout=60,
        )

    def stop(self, name: str, grace_s: float = 60) -> float:
        """SIGTERM, as Kubernetes stops a pod, then SIGKILL after the grace; seconds taken."""
        pidfile = self.var_dir / "run" / f"{name}.pid"
        if not pidfile.exists():
            return 0.0
        pid = int(pidfile.read_text().strip())
        began = time.monotonic()
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return 0.0
        while _alive(pid) and time.monotonic() - began < grace_s:
            time.sleep(0.1)  # a process's exit: nothing to poll but /proc
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        pidfile.unlink(missing_ok=True)
        return time.monotonic() - began


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def rolling_restarts(start_s: float = 6, every_s: float = 7) -> list[Fault]:
    """One instance of each scaled service replaced in turn, and one broker."""

    def service(name: str) -> Callable[[ChaosStack], None]:
        def act(stack: ChaosStack) -> None:
            assert isinstance(stack, RehearsalStack)
            stack.stop(name)
            stack.restart_services()  # infra/services.sh starts what of its own is gone

        return act

    def extra(name: str) -> Callable[[ChaosStack], None]:
        def act(stack: ChaosStack) -> None:
            assert isinstance(stack, RehearsalStack)
            stack.stop(name)
            stack.start(next(i for i in stack.extras if i.name == name))

        return act

    def broker(stack: ChaosStack) -> None:
        stack.kafka("stop", 2)
        stack.kafka("start", 2)

    plan: list[tuple[str, Callable[[ChaosStack], None]]] = [
        ("stream processors (1 of 2)", service("processors")),
        ("projection (2 of 2)", extra("projection-2")),
        ("synthetic worker (2 of 3)", extra("worker-synthetic-2")),
        ("kafka broker 2 (of 3)", broker),
        ("synthetic worker (1 of 3)", service("worker-synthetic")),
        ("image worker (1 of 2)", service("worker-image")),
        ("stream processors (2 of 2)", extra("processors-2")),
        ("projection (1 of 2)", service("projection")),
    ]
    return [Fault(name, start_s + n * every_s, act) for n, (name, act) in enumerate(plan)]


LAGGED: dict[str, tuple[TopicSpec, ...]] = {
    "genstream-processors": (
        JOBS_REQUESTED,
        CREDITS_LEDGER,
        USERS_PLANS,
        JOB_OUTCOMES,
        JOBS_LIFECYCLE,
    ),
    "genstream-projection": (CREDITS_LEDGER, JOBS_LIFECYCLE),
    worker_group(Workload.SYNTHETIC): tuple(
        topic_by_name(t) for t in tier_topics(Workload.SYNTHETIC)
    ),
}
"""The groups whose lag the rehearsal follows, over the topics each reads."""


class LagSampler(threading.Thread):
    """Each group's lag (records its commits are behind the ends) once a second."""

    def __init__(self, stack: ChaosStack) -> None:
        super().__init__(name="lag-sampler", daemon=True)
        self._admin = AdminClient(stack.client())
        self._halt = threading.Event()
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.gaps = 0
        self.started = time.monotonic()

    def _lag(self, group: str, topics: tuple[TopicSpec, ...]) -> int:
        partitions = [TopicPartition(t.name, p) for t in topics for p in range(t.partitions)]
        committed = self._admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, partitions)], request_timeout=5
        )[group].result()
        ends = self._admin.list_offsets(
            {tp: OffsetSpec.latest() for tp in partitions}, request_timeout=5
        )
        at = {(tp.topic, tp.partition): max(tp.offset, 0) for tp in committed.topic_partitions}
        return sum(
            max(0, future.result().offset - at.get((tp.topic, tp.partition), 0))
            for tp, future in ends.items()
        )

    def run(self) -> None:
        while not self._halt.wait(1.0):
            sample: dict[str, int] = {}
            for group, topics in LAGGED.items():
                try:
                    sample[group] = self._lag(group, topics)
                except KafkaException:
                    self.gaps += 1  # a broker restarting: a gap in the samples
            self.samples.append((time.monotonic() - self.started, sample))

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def summary(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for group in LAGGED:
            series = [(t, s[group]) for t, s in self.samples if group in s]
            if not series:
                continue
            peak_t, peak = max(series, key=lambda ts: ts[1])
            busy = [t for t, lag in series if lag > 0]
            found[group] = {
                "max": peak,
                "max_at_s": round(peak_t, 1),
                "median": sorted(lag for _, lag in series)[len(series) // 2],
                "last": series[-1][1],
                "last_nonzero_at_s": round(busy[-1], 1) if busy else None,
                "samples": len(series),
            }
        return found


TERMINAL_TYPES = frozenset(
    model.wire_type() for model in (JobCompleted, JobFailed, JobCancelled, JobExpired, JobRejected)
)


def terminal_times(stack: ChaosStack) -> list[float]:
    """Record timestamps (s) of the lifecycle's terminal events, each event id once."""
    consumer = Consumer(
        stack.client(
            **{"group.id": f"rehearsal-{uuid.uuid4().hex}"},
            **{"enable.partition.eof": True, "enable.auto.commit": False},
        )
    )
    parts = JOBS_LIFECYCLE.partitions
    consumer.assign([TopicPartition(JOBS_LIFECYCLE.name, p, 0) for p in range(parts)])
    times: dict[bytes, float] = {}
    at_end: set[int] = set()
    deadline = time.monotonic() + 120
    while len(at_end) < parts and time.monotonic() < deadline:
        message = consumer.poll(1)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                at_end.add(message.partition())
            continue
        headers = dict(message.headers() or [])
        if (headers.get(HEADER_TYPE) or b"").decode() in TERMINAL_TYPES:
            times.setdefault(headers.get(HEADER_ID) or b"", message.timestamp()[1] / 1000)
    consumer.close()
    return sorted(times.values())


def throughput(times: list[float], bucket_s: float = 5) -> dict[str, Any]:
    if len(times) < 2:
        return {"ends": len(times)}
    first = times[0]
    buckets = Counter(int((t - first) // bucket_s) for t in times)
    rates = [buckets.get(n, 0) / bucket_s for n in range(max(buckets) + 1)]
    return {
        "ends": len(times),
        "jobs_per_s": round(len(times) / (times[-1] - first), 1),
        f"per_{bucket_s:g}s_min": min(rates),
        f"per_{bucket_s:g}s_max": max(rates),
        f"per_{bucket_s:g}s": rates,
    }


def rehearse(*, jobs: int, users: int, rate_per_s: float) -> dict[str, Any]:
    stack = RehearsalStack(uuid.uuid4().hex[:8])
    try:
        began = time.monotonic()
        stack.up()
        started_s = round(time.monotonic() - began, 1)
        sampler = LagSampler(stack)
        sampler.start()
        faults = rolling_restarts()
        report = run_chaos(
            stack, jobs=jobs, users=users, rate_per_s=rate_per_s, faults=faults, settle_s=600
        )
        sampler.stop()
        report["stack_start_s"] = started_s
        report["processes"] = {
            "brokers": 3,
            "processors": 2,
            "projection": 2,
            **{
                f"workers {w.value}": 1
                + sum(1 for e in stack.extras if e.principal == f"worker-{w.value}")
                for w in Workload
            },
        }
        report["load"] = {"jobs": jobs, "users": users, "rate_per_s": rate_per_s}
        report["throughput"] = throughput(terminal_times(stack))
        report["lag"] = sampler.summary()
        report["lag_samples_missed"] = sampler.gaps
        report["stopped_services"] = sorted(
            set(report["stopped_services"])
            | {e.name for e in stack.extras if not _running(stack, e.name)}
        )
        return report
    finally:
        # The logs outlive the stack, for a failure to be read afterwards.
        shutil.copytree(stack.var_dir / "log", REPORT.parent / "logs", dirs_exist_ok=True)
        stack.down()


def _running(stack: RehearsalStack, name: str) -> bool:
    pidfile = stack.var_dir / "run" / f"{name}.pid"
    return pidfile.exists() and _alive(int(pidfile.read_text().strip()))


def _stop_on_term(signum: int, frame: FrameType | None) -> None:
    # SIGTERM ends the run like Ctrl-C: the stack is taken down, nothing left running.
    traceback.print_stack(frame, file=sys.stderr)
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    faulthandler.enable()
    signal.signal(signal.SIGTERM, _stop_on_term)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1200)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rate", type=float, default=20.0, help="submissions a second")
    args = parser.parse_args()
    report = rehearse(jobs=args.jobs, users=args.users, rate_per_s=args.rate)
    write_report(report, REPORT)
    print(json.dumps({k: v for k, v in report.items() if k != "rebuild_report"}, indent=2))
    ok = (
        report["lost"] == 0
        and report["multiple_ends"] == 0
        and report["double_charged"] == 0
        and report["ledger_mismatches"] == 0
        and report["rebuild_equal"]
        and not report["stopped_services"]
        and not report["fault_errors"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
