"""A small probe of reduced-precision speed: does bf16 (or fp16) beat fp32 on this CPU?

The CPU flags say whether bf16 has hardware at all; they do not say whether it pays. With AMX it
does by far (~7x); with AVX512-BF16 alone it depends on the core (AMD Zen 4: ~2.4x on matrix
products; an Intel Xeon held below AMX: slower than fp32, because its bf16 dot product issues on
one port and fp32 FMAs on two). So ``auto`` times a matrix product in both arithmetics and uses
the ratio for the whole model. A matrix product, not a convolution: a lone convolution call spends
much of its time reordering weights and setting up kernels (measured here: 1.0-2.5x for bf16 on
AMX, where whole networks gain 5-7x), while the product's ratio follows the hardware (AMX ~11x,
Zen 4 ~2.5x, a Xeon held below AMX 0.9x, AVX2 0.01x). A fraction of a second, once per process,
arithmetic and thread count.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Callable

import torch

from .hardware import cpu_info

__all__ = ["PROBE_SIZE", "best_seconds", "reduced_speedup"]

#: Side of the square matrices multiplied (2.1 GFLOP per product: ~10-20 ms in fp32 on two cores).
PROBE_SIZE = 1024
#: A reduced product slower than this is hopeless: stop timing it (emulated bf16 takes seconds).
GIVE_UP_SECONDS = 0.25

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _timer(dtype: torch.dtype, device: torch.device):
    generator = torch.Generator().manual_seed(0)
    left, right = (torch.randn(PROBE_SIZE, PROBE_SIZE, generator=generator).to(device, dtype) for _ in range(2))

    def run() -> float:
        start = time.perf_counter()
        torch.mm(left, right)
        return time.perf_counter() - start

    return run


@lru_cache(maxsize=8)
def _measure(precision: str, device_type: str, threads: int, isa: str, repeats: int) -> float:
    device = torch.device(device_type)
    with torch.inference_mode():
        fp32, reduced = _timer(torch.float32, device), _timer(_DTYPES[precision], device)
        best_fp32, best_reduced = fp32(), reduced()  # warm-up: kernels built on first use
        if best_reduced > GIVE_UP_SECONDS:
            return best_fp32 / best_reduced
        # Alternated, best of each: load from other processes weighs on both alike.
        for _ in range(repeats):
            best_fp32 = min(best_fp32, fp32())
            best_reduced = min(best_reduced, reduced())
    return best_fp32 / best_reduced


def reduced_speedup(precision: str, device: torch.device, repeats: int = 8) -> float:
    """fp32 time / ``precision`` time (``bf16`` or ``fp16``) of a :data:`PROBE_SIZE` square matrix
    product on ``device``'s CPU, best of ``repeats`` each; remembered per process, precision,
    thread count and ISA cap. Well under a second on the CPUs measured."""
    if precision not in _DTYPES:
        raise ValueError(f"no probe for {precision!r}")
    return _measure(precision, device.type, torch.get_num_threads(), cpu_info().isa_summary(), repeats)


def best_seconds(*runs: Callable[[], object], repeats: int) -> list[float]:
    """The best wall-clock time of each of ``runs`` over ``repeats`` rounds, after one warm-up
    call each (first-call allocations, kernels built on first use). Within a round the runs
    alternate, so load from other processes weighs on all of them alike."""
    for run in runs:
        run()
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for index, run in enumerate(runs):
            start = time.perf_counter()
            run()
            best[index] = min(best[index], time.perf_counter() - start)
    return best
