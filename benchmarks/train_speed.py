"""Seconds per training step of ``fomm.training.Trainer`` on this machine, per arithmetic.

Setups:

* ``vox-256``: the published vox-256 architecture and losses (``configs/vox-256.yaml``), batch 2 at
  256x256, 4-scale perceptual loss through VGG19 with **randomly initialised** weights (the
  ImageNet file cannot be fetched offline; the cost is the same), no GAN (as vox-256.yaml).
* ``sprites-64``: ``configs/sprites-64.yaml`` at its own batch size (pixel pyramid, no GAN).
* any other name in ``configs/`` at its own batch size.

Variants (``--variants``):

* ``baseline``: the float32 path as it was before channels-last and fused Adam (contiguous NCHW
  tensors, Adam's per-parameter loop): the original implementation's speed.
* ``fp32-cl``: float32, channels-last, fused Adam (``mixed_precision: no`` on the CPU today).
* ``bf16``: bf16 autocast on contiguous tensors (for comparison: slower than fp32 on oneDNN).
* ``bf16-cl``: bf16 autocast, channels-last, fused Adam (``mixed_precision: bf16``; what ``auto``
  picks on an AMX CPU).
* ``default``: the packaged config as it is, no precision flag (``mixed_precision: auto``): what
  ``fomm train --config vox-256`` does on this machine; the table names the arithmetic chosen.

Batches are random tensors (no decoding): this measures the networks, losses and optimiser steps.
The variants of a setup are timed round-robin, one step each per round, after one warm-up step
each, so that other load on the machine weighs on all of them alike; the table gives the median
and the best step. Prints the CPU, its ISA flags and the load average, then a Markdown table::

    python benchmarks/train_speed.py --threads 2                      # both setups, all variants
    python benchmarks/train_speed.py --setups vox-256 --steps 5 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset

from fomm.backends.hardware import device_summary
from fomm.models.registry import load_config
from fomm.device import resolve_device
from fomm.models.vgg import Vgg19Features
from fomm.training import Trainer
from fomm.training.trainer import ADAM_BETAS

VARIANTS = {
    # name: (mixed_precision, channels_last, fused Adam)
    "baseline": ("no", False, False),
    "fp32-cl": ("no", True, True),
    "bf16": ("bf16", False, True),
    "bf16-cl": ("bf16", True, True),
    # The published config as it is (mixed_precision: auto, the default): what the probe picks here.
    "default": (None, None, True),
}
BATCH_SIZES = {"vox-256": 2}


class RandomPairs(Dataset):
    """``num`` random ``(3, size, size)`` source/driving pairs (only its length matters here)."""

    def __init__(self, size: int, num: int) -> None:
        self.size, self.num = size, num

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, index: int) -> dict:
        generator = torch.Generator().manual_seed(index)
        return {"source": torch.rand(3, self.size, self.size, generator=generator),
                "driving": torch.rand(3, self.size, self.size, generator=generator)}


@dataclass
class Run:
    setup: str
    variant: str
    trainer: Trainer
    batch: dict
    times: list[float] = field(default_factory=list)

    def step(self) -> float:
        synchronize = self.trainer.device.type == "cuda"
        if synchronize:
            torch.cuda.synchronize()
        start = time.perf_counter()
        self.trainer.train_step(self.batch)
        if synchronize:
            torch.cuda.synchronize()
        return time.perf_counter() - start


def make_run(setup: str, variant: str, log_dir: str, device: str, vgg: Vgg19Features | None) -> Run:
    mode, channels_last, fused = VARIANTS[variant]
    config = load_config(setup)  # a packaged config, by name
    params, dataset_params = config.train_params, config.dataset_params
    assert params is not None and dataset_params is not None
    params.batch_size = BATCH_SIZES.get(setup, params.batch_size)
    if mode is not None:
        params.mixed_precision = mode
    size = dataset_params.frame_shape[0]
    trainer = Trainer(config, log_dir, device=device, dataset=RandomPairs(size, params.batch_size),
                      vgg=vgg if params.perceptual_backbone == "vgg19" else None, progress=False,
                      channels_last=channels_last)
    if not fused:  # the per-parameter loop of torch's Adam, as before
        trainer.optimizers = {name: torch.optim.Adam([p for group in optimizer.param_groups for p in group["params"]],
                                                     lr=optimizer.param_groups[0]["lr"], betas=ADAM_BETAS,
                                                     foreach=False)
                              for name, optimizer in trainer.optimizers.items()}
    batch = {key: torch.stack([trainer.dataset[i][key] for i in range(params.batch_size)])
             for key in ("source", "driving")}
    return Run(setup, variant, trainer, batch)


def measure(setup: str, variants: list[str], steps: int, device: str) -> list[Run]:
    vgg = Vgg19Features()  # random init (offline); every variant gets its own copy of it
    with tempfile.TemporaryDirectory() as log_dir:
        runs = [make_run(setup, variant, os.path.join(log_dir, variant), device, vgg) for variant in variants]
        for run in runs:
            run.step()  # warm-up: allocator, oneDNN kernels
        for _ in range(steps):
            for run in runs:
                run.times.append(run.step())
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant (after one warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--setups", nargs="+", default=["sprites-64", "vox-256"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    load_before = os.getloadavg()
    results = [run for setup in args.setups for run in measure(setup, args.variants, args.steps, args.device)]
    load_after = os.getloadavg()
    print(f"\n{device_summary(device)}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPU(s); load average "
          f"(1, 5, 15 min) before {_load(load_before)}, after {_load(load_after)} (other jobs inflate these "
          f"times)\n")
    print("| setup | batch | variant | arithmetic | s/step (median) | s/step (best) | speed-up (median) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for run in results:
        baseline = next((r for r in results if r.setup == run.setup and r.variant == "baseline"), None)
        median = statistics.median(run.times)
        speedup = f"{statistics.median(baseline.times) / median:.2f}x" if baseline is not None else "-"
        print(f"| {run.setup} | {run.trainer.schedule.batch_size} | {run.variant} | "
              f"{run.trainer.precision.describe().split(' (')[0]} | {median:.3f} | {min(run.times):.3f} | {speedup} |")
    for run in results:
        if run.variant == "default":
            print(f"\n{run.setup} default: {run.trainer.precision.describe()}")


def _load(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{value:.1f}" for value in values)


if __name__ == "__main__":
    main()
