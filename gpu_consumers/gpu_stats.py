"""Device memory and utilisation for the metrics, sampled while the worker runs on CUDA."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading

from gpu_consumers import metrics

_log = logging.getLogger(__name__)


class GpuStats:
    def __init__(self, device: str, interval_s: float = 5.0) -> None:
        self._device = device
        self._interval = interval_s

    def sample(self) -> None:
        import torch

        metrics.GPU_MEMORY.set(torch.cuda.memory_allocated())
        # Utilisation needs NVML, which not every deployment ships.
        with contextlib.suppress(RuntimeError, ModuleNotFoundError):
            metrics.GPU_UTILISATION.set(torch.cuda.utilization() / 100)

    def run(self, stop: threading.Event) -> None:
        if not self._device.startswith("cuda") or "torch" not in sys.modules:
            # Pipelines in their own process hold the device and report its memory per job;
            # torch here would only open a second CUDA context.
            return
        while not stop.wait(self._interval):
            try:
                self.sample()
            except Exception:
                _log.exception("sampling the GPU failed")
                return
