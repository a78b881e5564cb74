"""How far each family's animation is from its original code, on the reference sets in tests/data.

Each reference set (``tests/data/<family>-reference``; its README says how it was made) holds an
original-layout checkpoint's weights, its config, and the outputs the original repository's own code
computed from them. This script rebuilds the checkpoint file as the original wrote it, loads it
with ``fomm.load_checkpoint`` as a user would, animates with ``fomm.Animator`` and prints the
largest absolute difference from the original's frames (pixels in [0, 1]), in absolute motion and,
for TPSMM and MRAA, in their demos' relative mode (motion scaled by the convex-hull areas). The
tests hold every row to 1e-4 and every intermediate to its own bound; this prints the figures.

    python benchmarks/exactness.py
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import torch

import fomm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.reference_fixtures import fixture, load_original, original_checkpoint, reference_io  # noqa: E402

#: family -> the original's absolute-motion output, its relative-mode output (None: not in the set)
OUTPUTS = {
    "fomm": ("generator.prediction", None),
    "tpsmm": ("inpainting.prediction", "relative.prediction"),
    "mraa": ("generator_nobg.prediction", "relative.prediction"),
}


def fomm_rows() -> list[tuple[str, str, float]]:
    """FOMM's set pairs each source with its own driving frame (the original's generator call)."""
    model = fomm.load_checkpoint(fixture("fomm", "checkpoint.pth.tar"), config=fixture("fomm", "config.yaml"))
    io = reference_io("fomm")
    animator = fomm.Animator(model, relative=False, precision="fp32", backend="torch")
    error = max((animator.animate(io["source"][index], io["driving"][index:index + 1])
                 - io[OUTPUTS["fomm"][0]][index:index + 1]).abs().max().item() for index in range(len(io["source"])))
    return [("fomm", f"absolute ({OUTPUTS['fomm'][0]}, {len(io['source'])} pairs)", error)]


def family_rows(family: str) -> list[tuple[str, str, float]]:
    model = load_original(original_checkpoint(family), fixture(family, "config.yaml"))
    io = reference_io(family)
    absolute_key, relative_key = OUTPUTS[family]
    source, driving = io["source"][0], io["driving"]
    absolute = fomm.Animator(model, relative=False, precision="fp32", backend="torch").animate(source, driving)
    relative = fomm.Animator(model, relative=True, adapt_scale=True, precision="fp32",
                             backend="torch").animate(source, driving)
    frames = f"{len(driving)} frames"
    return [(family, f"absolute ({absolute_key}, {frames})", (absolute - io[absolute_key]).abs().max().item()),
            (family, f"relative, adapt_scale ({relative_key}, {frames})", (relative - io[relative_key]).abs().max().item())]


def main() -> None:
    torch.set_num_threads(1)
    rows = fomm_rows() + family_rows("tpsmm") + family_rows("mraa")
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, fp32, one thread")
    print("| family | animation (the original's output) | largest difference |")
    print("| --- | --- | ---: |")
    for family, what, error in rows:
        print(f"| {family} | {what} | {error:.1e} |")


if __name__ == "__main__":
    main()
