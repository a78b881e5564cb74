"""Peak memory of `fomm animate` and of one web-app request against the length of the driving video.

Makes 410x412 driving clips of several lengths (the bundled driving video, upscaled and looped),
animates each in its own process, through the command line (`fomm animate`) and through the web
app's request (:func:`fomm.app.job.run_animation`: result, side-by-side and keypoints figure), and
prints a table of frames, seconds and peak resident memory (the child's ru_maxrss). Both run the
one streaming pipeline: the peak should not grow with the number of frames.

    python benchmarks/memory.py                      # 169, 507 and 1690 frames, the bundled model
    python benchmarks/memory.py --frames 169 1690 --paths cli --extra --side-by-side panels.mp4
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
#: One web-app request (the page's defaults), in a process of its own: python -c APP_REQUEST CLIP OUT_DIR
APP_REQUEST = ("import sys; from pathlib import Path; import fomm; from fomm.assets import BUNDLED_CHECKPOINT, "
               "BUNDLED_SOURCE; from fomm.app.job import AnimationOptions, run_animation; "
               "model = fomm.load_checkpoint(BUNDLED_CHECKPOINT); Path(sys.argv[2]).mkdir(); "
               "run_animation(model, BUNDLED_SOURCE, Path(sys.argv[1]), AnimationOptions(), Path(sys.argv[2]), "
               "checkpoint=BUNDLED_CHECKPOINT)")


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
    parser.add_argument("--paths", nargs="+", choices=("cli", "app"), default=["cli", "app"])
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `fomm animate` options")
    args = parser.parse_args()
    print(f"machine: {cpu_description()}, python {platform.python_version()}")
    print("| path | driving frames (410x412) | seconds | peak RSS (MiB) |")
    print("| --- | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as folder:
        for frames in args.frames:
            clip = make_clip(Path(folder) / f"clip-{frames}.mp4", frames)
            for path in args.paths:
                if path == "cli":
                    run = [sys.executable, "-m", "fomm.cli", "animate", "--driving", str(clip),
                           "--out", str(Path(folder) / f"out-{frames}.mp4"), "--device", "cpu", *args.extra]
                else:
                    run = [sys.executable, "-c", APP_REQUEST, str(clip), str(Path(folder) / f"app-{frames}")]
                started = time.perf_counter()
                done = subprocess.run([sys.executable, "-c", MEASURE, *run], capture_output=True, text=True)
                seconds = time.perf_counter() - started
                if done.returncode != 0:
                    raise SystemExit(f"{path} failed on {frames} frames:\n{done.stderr[-2000:]}")
                peak_kib = int(done.stdout.strip().splitlines()[-1])
                print(f"| {path} | {frames} | {seconds:.1f} | {peak_kib / 1024:.0f} |")


if __name__ == "__main__":
    main()
