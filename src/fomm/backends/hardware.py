"""What the machine offers for reduced-precision arithmetic: CPU model and ISA flags, GPU kind.

The flags are those of ``/proc/cpuinfo`` held below ``ONEDNN_MAX_CPU_ISA`` when it is set: the
convolutions of torch and OpenVINO run in oneDNN, which then uses nothing above that level, so a
capped AMX machine computes like a CPU without AMX (this is how the no-AMX and AVX2-only figures
in docs/benchmarks.md were measured) and the choices made here follow what oneDNN will do.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

import torch

__all__ = ["CpuInfo", "cpu_info", "device_summary", "isa_cap", "reduced_precisions"]

#: ISA flags (as /proc/cpuinfo spells them) that matter for the networks' arithmetic.
ISA_FLAGS = ("amx_bf16", "amx_int8", "amx_fp16", "amx_tile", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni",
             "avx512f", "avx2", "fma")

_AVX2 = frozenset({"avx2", "fma"})
_AVX512_CORE = _AVX2 | {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"}
_AVX512_CORE_BF16 = _AVX512_CORE | {"avx512_vnni", "avx512_bf16"}
_AMX = frozenset({"amx_tile", "amx_int8", "amx_bf16"})
#: The flags a oneDNN ``ONEDNN_MAX_CPU_ISA`` level lets through, of those it can hold back. oneDNN's
#: levels are feature sets, not a line: AVX512_CORE does not include AVX-VNNI (a VEX encoding).
_ISA_LEVELS: dict[str, frozenset[str]] = {
    "SSE41": frozenset(),
    "AVX": frozenset(),
    "AVX2": _AVX2,
    "AVX2_VNNI": _AVX2 | {"avx_vnni"},
    "AVX2_VNNI_2": _AVX2 | {"avx_vnni"},
    "AVX512_CORE": _AVX512_CORE,
    "AVX512_CORE_VNNI": _AVX512_CORE | {"avx512_vnni"},
    "AVX512_CORE_BF16": _AVX512_CORE_BF16,
    "AVX512_CORE_FP16": _AVX512_CORE_BF16 | {"avx512_fp16", "avx_vnni"},
    "AVX512_CORE_AMX": _AVX512_CORE_BF16 | {"avx512_fp16", "avx_vnni"} | _AMX,
    "AVX512_CORE_AMX_FP16": _AVX512_CORE_BF16 | {"avx512_fp16", "avx_vnni", "amx_fp16"} | _AMX,
}
#: Every flag some level can hold back; flags outside this set are never touched.
_CAPPABLE = frozenset().union(*_ISA_LEVELS.values(), {"amx_fp16"})


@dataclass(frozen=True)
class CpuInfo:
    model: str
    flags: frozenset[str]
    #: The ``ONEDNN_MAX_CPU_ISA`` level the flags were held to, or None.
    cap: Optional[str] = None

    @property
    def has_fast_bf16(self) -> bool:
        """AMX or AVX512-BF16: bf16 dot products in hardware (oneDNN uses them). Whether they
        beat fp32 depends on the core: AMX by far; AVX512-BF16 on AMD Zen 4 about 2x, on Intel
        Xeons not at all (one port, against two for fp32 FMAs), hence the probes that confirm it."""
        return "amx_bf16" in self.flags or "avx512_bf16" in self.flags

    @property
    def has_fast_fp16(self) -> bool:
        """AMX-FP16 (Granite Rapids on): fp16 matrix products in hardware."""
        return "amx_fp16" in self.flags

    @property
    def has_int8_dot(self) -> bool:
        """VNNI (AVX512-VNNI, AVX-VNNI) or AMX-INT8: int8 dot products in one instruction, what
        makes int8 convolutions several times faster than fp32 ones."""
        return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & self.flags)

    def isa_summary(self) -> str:
        """The flags of :data:`ISA_FLAGS` this CPU has (held to the cap), space-separated, and the cap."""
        flags = " ".join(flag for flag in ISA_FLAGS if flag in self.flags) or "none of " + ", ".join(ISA_FLAGS)
        return flags if self.cap is None else f"{flags} (ONEDNN_MAX_CPU_ISA={self.cap})"


def isa_cap() -> Optional[str]:
    """The ``ONEDNN_MAX_CPU_ISA`` (or older ``DNNL_MAX_CPU_ISA``) level in force, upper case, when
    it is one oneDNN knows and below everything (``ALL``/``DEFAULT`` are no cap)."""
    value = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    if not value:
        return None
    level = value.strip().upper()
    return level if level in _ISA_LEVELS else None


def capped_flags(flags: frozenset[str], cap: Optional[str]) -> frozenset[str]:
    """``flags`` without those oneDNN will not use under ``cap`` (a key of the ISA levels, or None)."""
    if cap is None:
        return flags
    return frozenset(flag for flag in flags if flag not in _CAPPABLE or flag in _ISA_LEVELS[cap])


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """The CPU's model name and flags (from /proc/cpuinfo on Linux; empty flags elsewhere), held to
    ``ONEDNN_MAX_CPU_ISA`` (read once, as oneDNN reads it)."""
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
    cap = isa_cap()
    return CpuInfo(model=model, flags=capped_flags(flags, cap), cap=cap)


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
