"""What each motion mode of a model costs: ``MotionModel.transfer`` alone, per batch of driving frames.

    .venv/bin/python benchmarks/transfer_cost.py [--checkpoint CKPT] [--batch 16] [--threads 2]

The transfer runs in torch between the ``describe`` and ``render`` graphs whatever the backend, so
this is what ``--motion learned`` (a learned point transfer) adds to every batch over relative
motion. Prints one Markdown table: milliseconds per batch and per frame (median of 5 runs of
``--calls`` calls), with the CPU flags it ran on.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import fomm
from fomm.assets import BUNDLED_CHECKPOINT
from fomm.backends import cpu_info
from fomm.models import MotionSettings


def seconds_per_call(model: fomm.MotionModel, motion, mode: str, calls: int) -> float:
    """Median over 5 runs of the mean seconds of one ``transfer`` call on ``motion`` (batch B)."""
    settings = MotionSettings(mode)
    source = motion[:1]
    runs = []
    for _ in range(6):  # the first run warms up
        start = time.perf_counter()
        for _ in range(calls):
            model.transfer(source, motion, source, settings)
        runs.append((time.perf_counter() - start) / calls)
    return statistics.median(runs[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=BUNDLED_CHECKPOINT)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = fomm.load_checkpoint(args.checkpoint)
    height, width, channels = model.frame_shape
    with torch.inference_mode():
        images = torch.rand(args.batch, channels, height, width, generator=torch.Generator().manual_seed(0))
        motion = model.describe(images)
        costs = {mode: seconds_per_call(model, motion, mode, args.calls) for mode in model.motion_modes()}
    info = cpu_info()
    print(f"{args.checkpoint}; CPU {info.model}, {info.isa_summary()}; torch {torch.__version__}, "
          f"{args.threads} threads, batch {args.batch}")
    print()
    print("| motion | ms per batch | ms per frame |")
    print("| --- | ---: | ---: |")
    for mode, seconds in costs.items():
        print(f"| {mode} | {1e3 * seconds:.3f} | {1e3 * seconds / args.batch:.4f} |")


if __name__ == "__main__":
    main()
