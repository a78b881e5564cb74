"""What the machine offers for reduced-precision arithmetic: CPU model and ISA flags, GPU kind."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

__all__ = ["CpuInfo", "cpu_info", "device_summary", "reduced_precisions"]

#: ISA flags (as /proc/cpuinfo spells them) that matter for the networks' arithmetic.
ISA_FLAGS = ("amx_bf16", "amx_fp16", "amx_tile", "avx512_bf16", "avx512_fp16", "avx512f", "avx2", "fma")


@dataclass(frozen=True)
class CpuInfo:
    model: str
    flags: frozenset[str]

    @property
    def has_fast_bf16(self) -> bool:
        """AMX or AVX512-BF16: bf16 dot products in hardware (oneDNN uses them)."""
        return "amx_bf16" in self.flags or "avx512_bf16" in self.flags

    @property
    def has_fast_fp16(self) -> bool:
        """AMX-FP16 (Granite Rapids on): fp16 matrix products in hardware."""
        return "amx_fp16" in self.flags

    def isa_summary(self) -> str:
        """The flags of :data:`ISA_FLAGS` this CPU has, space-separated."""
        return " ".join(flag for flag in ISA_FLAGS if flag in self.flags) or "none of " + ", ".join(ISA_FLAGS)


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """The CPU's model name and flags (from /proc/cpuinfo on Linux; empty flags elsewhere)."""
    model, flags = platform.processor() or platform.machine(), frozenset()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = frozenset(value.split())
    return CpuInfo(model=model, flags=flags)


def reduced_precisions(device: torch.device) -> tuple[str, ...]:
    """Reduced precisions worth measuring on ``device`` (fastest first by expectation).

    CPU: bf16 with AMX or AVX512-BF16, fp16 with AMX-FP16; elsewhere they are emulated and slower
    than fp32. CUDA: fp16, and bf16 where the GPU supports it. MPS: fp16.
    """
    if device.type == "cuda":
        return ("fp16", "bf16") if torch.cuda.is_bf16_supported() else ("fp16",)
    if device.type == "mps":
        return ("fp16",)
    info = cpu_info()
    return tuple(name for name, fast in (("bf16", info.has_fast_bf16), ("fp16", info.has_fast_fp16)) if fast)


def device_summary(device: torch.device) -> str:
    """One line naming the hardware behind ``device``: the CPU model and its flags, or the GPU."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    info = cpu_info()
    return f"{info.model}; {info.isa_summary()}"
