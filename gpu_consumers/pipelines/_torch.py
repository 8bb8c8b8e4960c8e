"""What every torch-backed pipeline does the same way: find weights, size them, map failures."""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import torch

from gpu_consumers.pipelines.base import PermanentError, TransientError

__all__ = [
    "device_errors",
    "is_device_failure",
    "is_local",
    "loading_errors",
    "module_bytes",
    "release_memory",
]

_DEVICE_FAILURE: Final = re.compile(
    r"out of memory|can.t allocate memory|CUDA error|CUBLAS_STATUS|cuDNN error|CUDNN_STATUS"
    r"|MPS backend|NCCL",
    re.I,
)
"""Runtime errors raised by the device rather than by the model or its input."""


def is_local(model_dir: str) -> bool:
    """Whether ``model_dir`` names a directory here; otherwise it is a hub id to download.

    A path that is absolute or relative by its form (``./``, ``~``) is local even when it is
    missing, so that loading fails at once instead of asking the hub for it.
    """
    path = Path(model_dir)
    return path.exists() or path.is_absolute() or model_dir.startswith((".", "~"))


def module_bytes(modules: Iterable[torch.nn.Module]) -> int:
    """What the parameters and buffers of ``modules`` occupy, each tensor counted once."""
    seen: set[int] = set()
    total = 0
    for module in modules:
        for tensor in (*module.parameters(), *module.buffers()):
            if id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total


def is_device_failure(error: BaseException) -> bool:
    if isinstance(error, torch.OutOfMemoryError):
        return True
    accelerator_error = getattr(torch, "AcceleratorError", None)
    if isinstance(accelerator_error, type) and isinstance(error, accelerator_error):
        return True
    return isinstance(error, RuntimeError) and bool(_DEVICE_FAILURE.search(str(error)))


@contextmanager
def device_errors() -> Iterator[None]:
    """Turns out-of-memory and device failures into ``TransientError``: another attempt,
    perhaps on another worker, may succeed. Anything else passes through unchanged."""
    try:
        yield
    except RuntimeError as error:
        if is_device_failure(error):
            raise TransientError(f"device failure: {error}") from error
        raise


@contextmanager
def loading_errors(model_dir: str) -> Iterator[None]:
    """Device failures while loading are transient; missing or unreadable weights are not."""
    try:
        yield
    except RuntimeError as error:
        if is_device_failure(error):
            raise TransientError(f"device failure loading {model_dir}: {error}") from error
        raise PermanentError(f"cannot load the model at {model_dir}: {error}") from error
    except (OSError, ValueError, KeyError) as error:
        raise PermanentError(f"cannot load the model at {model_dir}: {error}") from error


def release_memory(device: str | None) -> None:
    """Returns freed weights to the device once the last reference to them is gone."""
    gc.collect()
    if device is not None and device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device == "mps" and torch.backends.mps.is_available():
        torch.mps.empty_cache()
