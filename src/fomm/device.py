"""Choosing the compute device and the CPU thread count at run time."""

from __future__ import annotations

import torch

from .errors import DeviceError

__all__ = ["resolve_device", "set_threads"]


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; other names are checked to exist."""
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise DeviceError(f"unknown device '{name}' (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device '{name}' asked for, but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"device '{name}' asked for, but this machine has {torch.cuda.device_count()} "
                              f"CUDA device(s)")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise DeviceError(f"device '{name}' asked for, but MPS is not available on this machine")
    elif device.type != "cpu":
        raise DeviceError(f"unsupported device '{name}' (use auto, cpu, cuda, cuda:N or mps)")
    return device


def set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads for torch's intra-op work (None: torch's default)."""
    if threads is None:
        return
    if threads < 1:
        raise DeviceError(f"--threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
