"""One 3x3 convolution three ways, at the shapes of vox-256's networks: oneDNN's direct kernel in
fp32 and bf16, and Winograd F(4x4, 3x3) in fp32 (:mod:`fomm.backends.winograd`). Prints one
Markdown table: milliseconds per image (best of ``--repeats``, the three alternated), the Winograd speed-up over direct
fp32, each one's largest error against an fp64 convolution, and what
:func:`~fomm.backends.winograd.winograd_faster` decides on this machine.

    python benchmarks/winograd.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import subprocess

import torch
import torch.nn.functional as F

from fomm.backends import winograd
from fomm.backends.probe import best_seconds
from fomm.backends.winograd import winograd_conv3x3, winograd_faster, winograd_weight

#: (in channels, out channels, height = width): vox-256's generator bottleneck (6 residual blocks,
#: 12 such convolutions per frame), its first up block's input size, and a small layer.
SHAPES = [(256, 256, 64), (128, 128, 128), (64, 64, 256), (128, 128, 64)]


def lscpu_flags() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    flags = next((line.split(":", 1)[1].split() for line in lscpu.splitlines() if line.startswith("Flags")), [])
    wanted = ("amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f", "avx2")
    return " ".join(flag for flag in wanted if flag in flags)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    rows = []
    for in_channels, out_channels, size in SHAPES:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(1, in_channels, size, size, generator=generator).contiguous(memory_format=torch.channels_last)
        weight = (torch.randn(out_channels, in_channels, 3, 3, generator=generator) / (3 * in_channels ** 0.5)
                  ).contiguous(memory_format=torch.channels_last)
        bias = torch.randn(out_channels, generator=generator)
        taps = winograd_weight(weight)
        x16, weight16, bias16 = x.bfloat16(), weight.bfloat16(), bias.bfloat16()
        exact = F.conv2d(x.double(), weight.double(), bias.double(), padding=1)
        direct, fast, half = (seconds * 1e3 for seconds in best_seconds(
            lambda: F.conv2d(x, weight, bias, padding=1), lambda: winograd_conv3x3(x, taps, bias),
            lambda: F.conv2d(x16, weight16, bias16, padding=1), repeats=args.repeats))
        errors = [(result.double() - exact).abs().max().item() for result in
                  (F.conv2d(x, weight, bias, padding=1), winograd_conv3x3(x, taps, bias),
                   F.conv2d(x16, weight16, bias16, padding=1))]
        winograd._measured.clear()
        chosen = winograd_faster(x, weight, taps, bias)
        rows.append(f"| {in_channels} -> {out_channels}, {size}x{size} | {direct:.1f} | {fast:.1f} | "
                    f"{direct / fast:.2f}x | {half:.1f} | {errors[0]:.1e} / {errors[1]:.1e} / {errors[2]:.1e} | "
                    f"{'Winograd' if chosen else 'direct'} |")
    print(f"lscpu flags (of interest): {lscpu_flags()}; ONEDNN_MAX_CPU_ISA="
          f"{os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset')}; torch {torch.__version__}, {args.threads} threads; "
          f"load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f}")
    print()
    print("| 3x3 convolution, 1 image | direct fp32 ms | Winograd fp32 ms | speed-up | direct bf16 ms | "
          "max error fp32 / Winograd / bf16 | `auto` takes |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
