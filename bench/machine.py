"""What the numbers were measured on: cores, memory, load, and the versions involved."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.procs import ROOT

__all__ = ["describe_machine"]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _command_version(argv: list[str], pattern: str) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout
    except OSError:
        return None
    found = re.search(pattern, out)
    return found.group(1) if found else None


def _kafka_version() -> str | None:
    libs = sorted((ROOT / ".cache" / "kafka").glob("*/libs/.complete"))
    return libs[-1].parent.parent.name if libs else None


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        return None
    return None


def describe_machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "kafka": _kafka_version(),
        "redis": _command_version(["redis-server", "--version"], r"v=(\S+)"),
        "postgresql": _command_version(
            ["bash", "-c", "ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -1"], r"(\S+)"
        ),
        "celery": _version("celery"),
        "kombu": _version("kombu"),
        "redis_py": _version("redis"),
        "faust": _version("faust-streaming"),
        "confluent_kafka": _version("confluent-kafka"),
        "fastapi": _version("fastapi"),
        "uvicorn": _version("uvicorn"),
        "sqlalchemy": _version("sqlalchemy"),
    }
