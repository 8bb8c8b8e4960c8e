"""Device choice: CUDA, then MPS, then CPU; an explicit choice is honoured or refused."""

from __future__ import annotations

import pytest
import torch

from gpu_consumers.device import DeviceUnavailableError, choose_device, dtype_for


@pytest.fixture
def no_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.usefixtures("no_accelerator")
def test_auto_falls_back_to_the_cpu() -> None:
    assert choose_device() == "cpu"
    assert choose_device("AUTO") == "cpu"


def test_auto_prefers_cuda_then_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device("auto") == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device("auto") == "cuda"


@pytest.mark.usefixtures("no_accelerator")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "mps"])
def test_an_unavailable_explicit_device_is_refused(device: str) -> None:
    with pytest.raises(DeviceUnavailableError, match="not available"):
        choose_device(device)


def test_a_missing_cuda_index_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert choose_device("cuda:1") == "cuda:1"
    with pytest.raises(DeviceUnavailableError, match="2 CUDA device"):
        choose_device("cuda:2")


def test_the_cpu_is_always_available() -> None:
    assert choose_device("cpu") == "cpu"


@pytest.mark.parametrize("device", ["tpu", "gpu", ""])
def test_unknown_devices_are_refused(device: str) -> None:
    with pytest.raises(ValueError, match="unknown device"):
        choose_device(device)


def test_half_precision_only_on_cuda() -> None:
    assert dtype_for("cuda") is torch.float16
    assert dtype_for("cuda:1") is torch.float16
    assert dtype_for("mps") is torch.float32
    assert dtype_for("cpu") is torch.float32
