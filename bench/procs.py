"""Child processes of a benchmark: started with their own log, stopped with a deadline."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["ROOT", "Process", "Processes", "free_port", "wait_until"]

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log: BinaryIO

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


class Processes:
    """The processes one part of the benchmark started; ``stop`` ends them all."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.running: list[Process] = []

    def start(self, name: str, argv: Sequence[str], env: dict[str, str]) -> Process:
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open("ab")
        popen = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: uvicorn and Celery children stop with it
        )
        process = Process(name, popen, log_path, log)
        self.running.append(process)
        return process

    def python(self, name: str, args: Sequence[str], env: dict[str, str]) -> Process:
        return self.start(name, [PYTHON, *args], env)

    def check(self) -> None:
        for process in self.running:
            if not process.alive():
                raise RuntimeError(
                    f"{process.name} exited ({process.popen.returncode}); "
                    f"last lines of {process.log_path}:\n{process.tail()}"
                )

    def stop(self, names: Sequence[str] | None = None, *, grace_s: float = 30.0) -> None:
        chosen = [p for p in self.running if names is None or p.name in names]
        for process in chosen:
            if process.alive():
                _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process in chosen:
            try:
                process.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.popen.wait(10)
            process.log.close()
            self.running.remove(process)


def _signal_group(process: Process, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def wait_until(
    what: str, predicate: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.2
) -> None:
    """Polls ``predicate`` until it holds; raises ``TimeoutError`` naming ``what`` after that."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout_s:.0f}s")
        time.sleep(interval_s)


def free_port() -> int:
    """A loopback port nothing listens on now, for a child process to listen on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
