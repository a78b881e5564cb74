"""Live mode's speed: ``fomm live`` on a clip read at camera pace, one Markdown table.

Each row runs ``fomm live --input CLIP --no-window --out FILE`` in a fresh process, as a user would,
with the clip read at its own frame rate (a camera's pace: frames the model has no time for are
dropped, never queued), and copies the rate and latency it prints at the end. Models: the bundled
sprites model (64x64) and the vox-256 architecture with random weights (256x256: the speed of a
published face model, not its pictures; no checkpoint is downloaded). The clip is the bundled
driving video, resized and looped to ``--frames`` frames at ``--fps``.

    python benchmarks/live.py --threads 1 2 --precisions auto int8

The first ``auto`` run of a model may export and check it (cached in ``$FOMM_CACHE`` afterwards);
each model is therefore run once untimed before its rows (``--no-warm-up`` skips that).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import fomm
from fomm.assets import BUNDLED_CHECKPOINT, BUNDLED_DRIVING
from fomm.backends import device_summary
from fomm.data.frames import fit_frames
from fomm.data.media import read_driving_video
from fomm.data.video import write_video

#: What ``fomm live`` prints last: ``animated A of R frames (D dropped) in S s: F fps ...;
#: latency M ms median, P ms p95, X ms max (ENGINE)``.
SUMMARY = re.compile(r"animated (\d+) of (\d+) frames \((\d+) dropped\) in ([\d.]+) s: ([\d.]+) fps.*?"
                     r"latency (\d+) ms median, (\d+) ms p95, (\d+) ms max(?: \((.+)\))?")


@dataclass
class LiveRow:
    model: str
    threads: int
    precision: str
    animated: int
    read: int
    dropped: int
    fps: float
    latency_ms: tuple[int, int, int]
    engine: str


def driving_clip(folder: Path, size: int, frames: int, fps: float) -> Path:
    """The bundled driving video at ``size x size``, looped to ``frames`` frames, as an mp4."""
    video, _ = read_driving_video(BUNDLED_DRIVING)
    fitted = fit_frames(video, size, size)
    looped = fitted.repeat(-(-frames // len(fitted)), 1, 1, 1)[:frames]
    pixels = (looped.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return write_video(folder / f"driving-{size}-{frames}.mp4", pixels, fps=fps)


def vox_checkpoint(folder: Path) -> Path:
    torch.manual_seed(0)
    return fomm.save_checkpoint(folder / "vox-256-random.pt", fomm.build_model(fomm.load_config("vox-256")).eval())


def run_live(checkpoint: Path, clip: Path, out: Path, threads: int, precision: str) -> str:
    command = [sys.executable, "-m", "fomm.cli", "live", "--checkpoint", str(checkpoint), "--input", str(clip),
               "--no-window", "--out", str(out), "--threads", str(threads), "--precision", precision]
    if precision == "int8":
        command += ["--backend", "openvino"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def parse(output: str, model: str, threads: int, precision: str) -> LiveRow:
    match = SUMMARY.search(output)
    if match is None:
        raise SystemExit(f"no summary line in fomm live's output:\n{output}")
    animated, read, dropped = (int(match.group(i)) for i in (1, 2, 3))
    latency = (int(match.group(6)), int(match.group(7)), int(match.group(8)))
    return LiveRow(model, threads, precision, animated, read, dropped, float(match.group(5)), latency,
                   match.group(9) or "")


def table(rows: list[LiveRow], fps: float, frames: int) -> str:
    lines = ["| model | clip | threads | --precision | ran on | animated / read (dropped) | fps | "
             "latency median / p95 / max |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        lines.append(f"| {row.model} | {frames} frames, {fps:g} fps | {row.threads} | {row.precision} | {row.engine} | "
                     f"{row.animated} / {row.read} ({row.dropped}) | {row.fps:.1f} | "
                     f"{' / '.join(str(value) for value in row.latency_ms)} ms |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vox-256", "bundled"], choices=["vox-256", "bundled"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--precisions", nargs="+", default=["auto"], choices=["auto", "fp32", "bf16", "int8"])
    parser.add_argument("--frames", type=int, default=512)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--no-warm-up", action="store_true")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    rows: list[LiveRow] = []
    with tempfile.TemporaryDirectory(prefix="fomm-live-") as temporary:
        folder = Path(temporary)
        for model in args.models:
            checkpoint, size = (vox_checkpoint(folder), 256) if model == "vox-256" else (BUNDLED_CHECKPOINT, 64)
            clip = driving_clip(folder, size, args.frames, args.fps)
            label = "vox-256 (random weights, 256x256)" if model == "vox-256" else "bundled (64x64)"
            for precision in args.precisions:
                if not args.no_warm_up:
                    run_live(checkpoint, clip, folder / "warm-up.mp4", max(args.threads), precision)
                for threads in args.threads:
                    output = run_live(checkpoint, clip, folder / "live.mp4", threads, precision)
                    rows.append(parse(output, label, threads, precision))
                    print(f"  {label}, {threads} threads, {precision}: {rows[-1].fps:.1f} fps", file=sys.stderr,
                          flush=True)
    print(f"{device_summary(torch.device('cpu'))}; torch {torch.__version__}")
    print(f"load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f}")
    print()
    print(table(rows, args.fps, args.frames))


if __name__ == "__main__":
    main()
