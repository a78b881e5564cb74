"""Peak memory of `fomm animate` against the length of the driving video.

Makes 410x412 driving clips of several lengths (the bundled driving video, upscaled and looped),
runs `fomm animate` on each in its own process and prints a table of frames, seconds and peak
resident memory (the child's ru_maxrss). Streaming keeps the peak flat: it should not grow with
the number of frames.

    python benchmarks/memory.py                      # 169, 507 and 1690 frames, the bundled model
    python benchmarks/memory.py --frames 169 1690 --extra --side-by-side panels.mp4
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from fomm.assets import BUNDLED_DRIVING
from fomm.data.video import iter_frames, write_video

MEASURE = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)")


def make_clip(path: Path, frames: int, height: int = 410, width: int = 412) -> Path:
    base = [cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC) for frame in iter_frames(BUNDLED_DRIVING)]
    looped = (base[index % len(base)] if (index // len(base)) % 2 == 0 else base[-1 - index % len(base)]
              for index in range(frames))
    return write_video(path, looped, fps=25)


def cpu_description() -> str:
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        present = set(next(line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")))
        flags = " ".join(flag for flag in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if flag in present)
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{model} [{flags}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[169, 507, 1690])
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `fomm animate` options")
    args = parser.parse_args()
    print(f"machine: {cpu_description()}, python {platform.python_version()}")
    print("| driving frames (410x412) | seconds | peak RSS (MiB) |")
    print("| ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as folder:
        for frames in args.frames:
            clip = make_clip(Path(folder) / f"clip-{frames}.mp4", frames)
            out = Path(folder) / f"out-{frames}.mp4"
            command = [sys.executable, "-c", MEASURE, sys.executable, "-m", "fomm.cli", "animate",
                       "--driving", str(clip), "--out", str(out), "--device", "cpu", *args.extra]
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            seconds = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"fomm animate failed on {frames} frames:\n{done.stderr[-2000:]}")
            peak_kib = int(done.stdout.strip().splitlines()[-1])
            print(f"| {frames} | {seconds:.1f} | {peak_kib / 1024:.0f} |")


if __name__ == "__main__":
    main()
