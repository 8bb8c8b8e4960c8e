"""Which torch device a worker runs its models on, and in which precision."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["DeviceUnavailableError", "choose_device", "dtype_for"]

_KINDS = ("cuda", "mps", "cpu")


class DeviceUnavailableError(RuntimeError):
    """An explicitly requested device is not present on this machine."""


def choose_device(preferred: str = "auto") -> str:
    """The device to load models onto: ``auto`` takes CUDA, then MPS, then the CPU.

    An explicit choice (``cuda``, ``cuda:1``, ``mps``, ``cpu``) is honoured or refused with
    ``DeviceUnavailableError``: a worker configured for a GPU must not quietly run on the CPU.
    """
    import torch

    wanted = preferred.strip().lower()
    if wanted == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if _mps_available():
            return "mps"
        return "cpu"
    kind, _, index = wanted.partition(":")
    if kind not in _KINDS:
        raise ValueError(f"unknown device {preferred!r}: expected auto, cuda[:N], mps or cpu")
    if kind == "cpu":
        return "cpu"
    if kind == "mps":
        if not _mps_available():
            raise DeviceUnavailableError("device 'mps' was requested but MPS is not available")
        return "mps"
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"device {preferred!r} was requested but CUDA is not available"
        )
    if index:
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device {preferred!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist"
            )
        return f"cuda:{int(index)}"
    return "cuda"


def dtype_for(device: str) -> torch.dtype:
    """Half precision on CUDA, where it halves memory and speeds up kernels; full elsewhere.

    MPS and CPU half-precision kernels are incomplete or slow for these models.
    """
    import torch

    return torch.float16 if device.startswith("cuda") else torch.float32


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
