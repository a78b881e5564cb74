"""The arithmetic of a training run: float32, or bf16/fp16 autocast, and the memory format of the
networks' tensors.

``train_params.mixed_precision``:

* ``no``: float32 throughout (the original's arithmetic).
* ``bf16`` / ``fp16``: the convolutions run under ``torch.autocast`` in that type; the parameters
  (master weights), the Adam states and every loss stay float32, and so do the numerically
  delicate steps inside the networks (keypoint statistics, sampling grids, the 2x2 inverse of the
  equivariance loss). ``fp16`` adds a gradient scaler and runs on CUDA only; ``bf16`` runs on CUDA
  GPUs that support it and on CPUs (fast where the CPU has AMX or AVX512-BF16: oneDNN then uses
  them; elsewhere emulated and slower than float32).
* ``auto`` (the default): chosen here at run time. CUDA: bf16 where the GPU supports it, else fp16.
  CPU: bf16 where the CPU has bf16 hardware (AMX, or AVX512-BF16 as on AMD Zen 4) *and* a small
  convolution probe (forward and backward, channels-last) measures bf16 at least
  :data:`AUTO_MIN_SPEEDUP` times faster than float32; float32 otherwise. The bf16 loss curves
  were checked against float32 on both kinds of hardware (docs/benchmarks.md: an AMX Xeon, and a
  real Zen 4, three seeds). Other devices: float32.

Channels-last (NHWC) tensors are what oneDNN's fast convolutions want on the CPU, in float32 and
above all in bf16 (a vox-256 bf16 training step on contiguous NCHW tensors measured 1.4x slower),
and what CUDA's tensor cores want under autocast. It is the default on the CPU and under autocast on CUDA; it
changes strides only, never names or values of the state dicts.
"""

from __future__ import annotations

import copy
import logging
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backends.hardware import cpu_info
from ..errors import ConfigError

__all__ = ["AUTO_MIN_SPEEDUP", "FloatFeatures", "TrainingPrecision", "frozen_feature_network", "measure_bf16_speedup",
           "resolve_precision"]

logger = logging.getLogger(__name__)

#: ``mixed_precision: auto`` picks bf16 on a CPU when the probe measures it this much faster than
#: float32. The probe, 2 threads: 10.5x on an AMX Xeon, 1.5-1.7x on an AMD Zen 4 (AVX512-BF16),
#: where a whole vox-256 step gains more than that (docs/benchmarks.md), and 0.73x on an Intel
#: core held below AMX, whose AVX512-BF16 units are no faster than its fp32 ones: a margin above
#: 1 that those last cores stay below, and Zen 4 stays above.
AUTO_MIN_SPEEDUP = 1.25

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass(frozen=True)
class TrainingPrecision:
    """How a run computes: ``autocast_dtype`` (None: float32) and the networks' memory format.
    ``reason`` says why, for the log."""

    autocast_dtype: Optional[torch.dtype]
    channels_last: bool
    reason: str

    @property
    def name(self) -> str:
        """``fp32``, ``bf16`` or ``fp16``."""
        return _NAMES[self.autocast_dtype]

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @property
    def needs_grad_scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has float32's exponent range."""
        return self.autocast_dtype == torch.float16

    def autocast(self, device: torch.device) -> AbstractContextManager:
        """The region the networks' forward passes run in."""
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device.type, dtype=self.autocast_dtype)

    def describe(self) -> str:
        layout = "channels-last" if self.channels_last else "contiguous (NCHW)"
        return f"{self.name}, {layout} tensors ({self.reason})"


def resolve_precision(mode: str, device: torch.device, channels_last: Optional[bool] = None,
                      probe: Optional[Callable[[torch.device], float]] = None) -> TrainingPrecision:
    """The :class:`TrainingPrecision` for ``train_params.mixed_precision`` = ``mode`` on ``device``.

    ``channels_last`` None picks the default (CPU: yes; CUDA: under autocast). ``probe`` measures
    bf16's speed-up on the CPU for ``auto`` (default :func:`measure_bf16_speedup`). Raises
    :class:`~fomm.errors.ConfigError` for bf16 on a GPU without bfloat16 support.
    """
    dtype, reason = _autocast_dtype(mode, device, probe or measure_bf16_speedup)
    if channels_last is None:
        channels_last = device.type == "cpu" or (device.type == "cuda" and dtype is not None)
    return TrainingPrecision(autocast_dtype=dtype, channels_last=channels_last, reason=reason)


def _autocast_dtype(mode: str, device: torch.device,
                    probe: Callable[[torch.device], float]) -> tuple[Optional[torch.dtype], str]:
    if mode == "no":
        return None, "train_params.mixed_precision: no"
    if mode == "auto":
        return _auto_dtype(device, probe)
    if mode not in _DTYPES:
        raise ConfigError(f"train_params.mixed_precision: {mode!r} is not one of no, auto, bf16, fp16")
    if device.type == "cuda":
        if mode == "bf16" and not torch.cuda.is_bf16_supported():
            raise ConfigError("train_params.mixed_precision: bf16 asked for, but this GPU does not support "
                              "bfloat16; use fp16 or auto")
        return _DTYPES[mode], f"train_params.mixed_precision: {mode}"
    if device.type == "cpu" and mode == "bf16":
        if not cpu_info().has_fast_bf16:
            logger.warning("train_params.mixed_precision: bf16 on a CPU without AMX or AVX512-BF16: bfloat16 "
                           "is emulated there and usually slower than float32 (auto would pick float32)")
        return torch.bfloat16, "train_params.mixed_precision: bf16"
    logger.warning("train_params.mixed_precision: %s is not supported on %s; training in float32", mode, device)
    return None, f"{mode} is not supported on {device.type}"


def _auto_dtype(device: torch.device, probe: Callable[[torch.device], float]) -> tuple[Optional[torch.dtype], str]:
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "auto: this GPU supports bfloat16"
        return torch.float16, "auto: this GPU lacks bfloat16; fp16 with gradient scaling"
    if device.type != "cpu":
        return None, f"auto: no reduced precision on {device.type}"
    info = cpu_info()
    if not info.has_fast_bf16:
        return None, f"auto: this CPU has neither AMX nor AVX512-BF16 (flags: {info.isa_summary()})"
    hardware = "AMX" if "amx_bf16" in info.flags else "AVX512-BF16"
    speedup = probe(device)
    if speedup >= AUTO_MIN_SPEEDUP:
        return torch.bfloat16, (f"auto: {hardware}, and a bf16 convolution probe (forward and backward) ran "
                                f"{speedup:.1f}x as fast as float32; --mixed-precision no trains in float32")
    return None, (f"auto: {hardware}, but a bf16 convolution probe (forward and backward) ran only {speedup:.2f}x "
                  f"as fast as float32 (below {AUTO_MIN_SPEEDUP}x)")


def measure_bf16_speedup(device: torch.device, repeats: int = 8) -> float:
    """float32 time / bf16-autocast time of a small channels-last convolution pair, forward and
    backward (``(2, 32, 64, 64)`` input, 3x3 kernels, 64 channels), best of ``repeats`` each,
    measured alternately so that other load on the machine weighs on both alike (on a busy
    machine single runs vary several-fold; the best ones do not). About 0.1-1 s on a CPU.

    Uses its own random generator: the global random streams (weights, warps) are untouched.
    """
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 32, 64, 64, generator=generator)
    kernels = [torch.randn(64, 32, 3, 3, generator=generator) * 0.06,
               torch.randn(64, 64, 3, 3, generator=generator) * 0.04]

    def run(dtype: Optional[torch.dtype]) -> float:
        inputs = image.to(device).contiguous(memory_format=torch.channels_last).requires_grad_(True)
        weights = [k.to(device).contiguous(memory_format=torch.channels_last).requires_grad_(True) for k in kernels]
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            hidden = F.relu(F.conv2d(inputs, weights[0], padding=1))
            out = F.conv2d(hidden, weights[1], padding=1)
        out.float().square().mean().backward()
        return time.perf_counter() - start

    for _ in range(2):  # warm-up: oneDNN builds its kernels on first use
        run(None), run(torch.bfloat16)
    fp32, bf16 = float("inf"), float("inf")
    for _ in range(repeats):
        fp32 = min(fp32, run(None))
        bf16 = min(bf16, run(torch.bfloat16))
    return fp32 / bf16


class FloatFeatures(nn.Module):
    """A feature network whose outputs (a list of maps) are returned in float32, so that the losses
    computed on them are float32 even when the network runs in reduced precision."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, image: Tensor) -> list[Tensor]:
        return [features.float() for features in self.network(image)]


def frozen_feature_network(network: nn.Module, precision: TrainingPrecision, device: torch.device) -> nn.Module:
    """A copy of a frozen feature network (the perceptual loss's VGG19) ready for ``precision``:
    on ``device``, in its memory format, and under autocast with the convolution weights stored in
    the autocast type and float32 outputs (:class:`FloatFeatures`).

    Storing the weights reduced gives the same arithmetic as autocast's own casts, which for frozen
    weights are not cached: they would be redone on every call (eight a step: prediction and
    target at four scales). The caller's network is left as it was.
    """
    network = copy.deepcopy(network).to(device=device, memory_format=precision.memory_format)
    if precision.autocast_dtype is None:
        return network
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            module.to(precision.autocast_dtype)
    return FloatFeatures(network)
