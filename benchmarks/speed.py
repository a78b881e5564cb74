"""Inference speed of keypoint detection + generation, printed as a Markdown table.

    .venv/bin/python benchmarks/speed.py [--config configs/vox-256.yaml] [--size 256] [--batch 1]

Measures, with torch threads = CPU cores, frames per second of one full animation step (keypoint
detector on the driving frame, then the generator with the source's keypoints), the FLOPs per frame
counted by ``torch.utils.flop_counter`` and the GFLOP/s achieved. Also the cached path that
``Animator`` uses: source encoded once, driving frames batched.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import fomm

CONFIGS = Path(fomm.__file__).parent / "configs"


def measure(step, repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``step()`` over ``repeats`` runs."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def count_flops(step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIGS / "vox-256.yaml"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4, help="driving frames per call in the cached path")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.set_num_threads(os.cpu_count() or 1)
    device = fomm.resolve_device(args.device)
    model = fomm.build_model(fomm.load_config(args.config), device=device).eval()
    source = torch.rand(1, 3, args.size, args.size, device=device)
    driving = torch.rand(args.batch, 3, args.size, args.size, device=device)

    with torch.inference_mode():
        kp_source = model.kp_detector(source)
        features = model.generator.encode(source)

        def full_step() -> None:
            kp_driving = model.kp_detector(driving[:1])
            model.generator(source, kp_source=kp_source, kp_driving=kp_driving)

        def cached_step() -> None:
            kp_driving = model.kp_detector(driving)
            batch = driving.shape[0]
            model.generator.animate(features, kp_source=kp_source.expand(batch), kp_driving=kp_driving)

        def detector_step() -> None:
            model.kp_detector(driving[:1])

        rows = []
        for name, step, frames in [("keypoints + generator, batch 1", full_step, 1),
                                   (f"cached source, batch {args.batch}", cached_step, args.batch),
                                   ("keypoint detector alone, batch 1", detector_step, 1)]:
            flops = count_flops(step) / frames
            seconds = measure(step, args.repeats) / frames
            rows.append((name, 1 / seconds, seconds * 1000, flops / 1e9, flops / seconds / 1e9))

    print(f"config {Path(args.config).name}, {args.size}x{args.size}, device {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print()
    print("| path | frames/s | ms/frame | GFLOP/frame | GFLOP/s |")
    print("|---|---|---|---|---|")
    for name, fps, ms, gflop, rate in rows:
        print(f"| {name} | {fps:.2f} | {ms:.0f} | {gflop:.1f} | {rate:.1f} |")


if __name__ == "__main__":
    main()
