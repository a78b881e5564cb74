"""Animation speed per backend and precision: one Markdown table per machine.

    .venv/bin/python benchmarks/speed.py            # full: every backend, end-to-end runs (~5 min, 2 cores)
    .venv/bin/python benchmarks/speed.py --quick    # the main rows, fewer frames, no end-to-end (< 1 min)

Models: the vox-256 architecture at 256x256 with random weights (the published setup's cost) and
the bundled sprites model at 64x64. Each row animates real frames (the bundled source and driving
video, upscaled) through :class:`fomm.Animator`: source encoded once, driving frames in batches.
"baseline (original-equivalent)" is the plain fp32 networks in contiguous memory, which run at the
original implementation's speed (issue 17). Columns:

* frames/s: driving frames per second (median of ``--repeats`` runs after a warm-up);
* frames/CPU-s: driving frames per second of CPU time used by this process (all its threads):
  close to frames/s x threads on an idle machine, and still meaningful on a busy one;
* GFLOP/s: the networks' nominal work per frame (counted on the baseline with
  ``torch.utils.flop_counter``) times frames/s, so rows compare like for like;
* peak %: that rate over this machine's measured matrix-multiply peak at the row's precision;
* max diff, PSNR: the row's frames against the baseline's (fp32) frames;
* RSS MiB: growth of the process's resident memory while the row ran (engine included).

int8 (OpenVINO, quantised with NNCF) is calibrated on the bundled source and the last 8 frames of
the bundled driving video, which the timed frames (its first ``--frames``) do not include.

Time to the first frame (``--no-first-frame`` skips it): for fp32, ``auto`` and int8, seconds from
``Animator(...)`` to its first animated frame, for the first Animator of a freshly loaded model in
this process and for a second one of the same model; for ``auto`` also with an empty
``$FOMM_CACHE`` (the choice made now, as on a user's first run).

The full run also times ``fomm animate`` as a user runs it, on a 410x412 (height x width),
169-frame clip, against the model-only rate. Set ``FOMM_CACHE`` to keep its exports elsewhere
(default ``~/.cache/fomm``); the first run exports vox-256 for the exported runtimes (~30 s).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

import fomm
from fomm.models import MotionSettings
from fomm.animate import Animator
from fomm.data.frames import fit_frames
from fomm.assets import BUNDLED_CHECKPOINT, BUNDLED_DRIVING, BUNDLED_SOURCE
from fomm.backends import (Engine, candidates, choose_engine, cpu_info, create_engine, device_summary, psnr,
                            reduced_precisions)
from fomm.backends.selection import forget_choices
from fomm.backends.torch_engine import TorchEngine
from fomm.data.media import read_driving_video, read_source_image
from fomm.data.video import write_video

BASELINE = "baseline (original-equivalent)"


@dataclass
class Row:
    model: str
    label: str
    precision: str
    batch: int
    frames_per_second: float
    frames_per_cpu_second: float
    gflop_per_second: float
    peak_fraction: float
    max_abs_diff: float
    psnr_db: float
    rss_mib: float
    note: str = ""


class PeakMemory:
    """Samples the process's resident set size every few milliseconds in a thread (CPU), or
    torch's CUDA allocator peak."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0
        self._running = False

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
            return self
        self.start = self.peak = self.rss()
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while self._running:
            self.peak = max(self.peak, self.rss())
            time.sleep(0.005)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
            return
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.start) / 2 ** 20


def matmul_peaks(device: torch.device) -> dict[str, float]:
    """GFLOP/s of a 2048^3 matrix product per precision this device computes natively (fp32,
    and the reduced ones its flags offer: emulated ones take minutes and say nothing): best of a
    few runs."""
    peaks = {}
    size = 2048
    offered = ("fp32", *reduced_precisions(device))
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        if name not in offered:
            continue
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        best = math.inf
        for _ in range(4):
            start = time.perf_counter()
            a @ b
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - start)
        peaks[name] = 2 * size ** 3 / best / 1e9
    return peaks


def flops_per_frame(model: fomm.MotionModel, source: torch.Tensor, driving: torch.Tensor) -> float:
    """Multiply-adds x2 of describing + rendering per driving frame (source encoded once)."""
    engine = TorchEngine(model, "fp32", optimize=False)
    with torch.inference_mode():
        prepared = engine.prepare_source(source[None])
        with FlopCounterMode(display=False) as counter:
            motion = engine.describe(driving)
            engine.render(prepared, model.transfer(prepared.motion, motion, motion[:1], MotionSettings("absolute")))
    return counter.get_total_flops() / len(driving)


def run_row(model: fomm.MotionModel, make_engine: Callable[[], Engine], source: torch.Tensor, driving: torch.Tensor,
            batch: int, repeats: int, device: torch.device) -> tuple[float, float, torch.Tensor, float]:
    """Frames per second and per CPU-second of this process (medians), the frames, RSS growth.

    CPU time counts the work of every thread and not the time others' processes take the
    cores, so it stays comparable on a shared machine, where the wall-clock rate drops."""
    gc.collect()
    with PeakMemory(device) as memory:
        engine = make_engine()
        # The model's own motion, as `fomm animate` runs it (the bundled model's learned transfer).
        animator = Animator.with_settings(model, model.default_motion(), batch_size=batch, engine=engine)
        animator.animate(source, driving[:batch])  # warm-up: kernels chosen, graphs compiled
        walls, cpus = [], []
        for _ in range(repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            frames = animator.animate(source, driving)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    del animator, engine
    count = len(driving)
    return count / statistics.median(walls), count / statistics.median(cpus), frames, memory.growth_mib


def calibration_frames(height: int, width: int, count: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 calibration: the bundled source (1, 3, H, W) and the last ``count`` bundled driving
    frames (the timed rows use the first ones)."""
    source = fit_frames(read_source_image(BUNDLED_SOURCE), height, width)
    frames, _ = read_driving_video(BUNDLED_DRIVING)
    return source, fit_frames(frames[-count:], height, width)


def bench_model(name: str, model: fomm.MotionModel, source: torch.Tensor, driving: torch.Tensor, batch: int,
                repeats: int, peaks: dict[str, float], quick: bool, device: torch.device) -> list[Row]:
    flops = flops_per_frame(model, source, driving[:batch])
    found = candidates(device)
    if quick:  # the rows that matter: fp32 in torch, and every reduced precision
        found = [c for c in found if c.backend == "torch" or c.precision != "fp32"]
    plans: list[tuple[str, str, Callable[[], Engine]]] = [
        (BASELINE, "fp32", lambda: TorchEngine(model, "fp32", optimize=False))]
    calibration = calibration_frames(*source.shape[-2:])
    plans += [(f"{c.backend} (fused, channels-last)" if c.backend == "torch" else c.backend, c.precision,
               lambda c=c: create_engine(model, c.backend, c.precision, calibration=calibration)) for c in found]
    chosen: dict[str, Engine] = {}

    def auto_engine() -> Engine:
        start = time.perf_counter()
        engine, measured = choose_engine(model, "auto", "auto", source[None], driving[:2])
        chosen["engine"], chosen["seconds"], chosen["measured"] = engine, time.perf_counter() - start, bool(measured)
        return engine

    plans.append(("auto", "auto", auto_engine))
    rows, reference = [], None
    for label, precision, make in plans:
        try:
            fps, cpu_fps, frames, rss = run_row(model, make, source, driving, batch, repeats, device)
        except Exception as error:  # a backend that cannot run here: say so in the table
            rows.append(Row(name, label, precision, batch, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan,
                            math.nan, f"failed: {type(error).__name__}: {str(error)[:80]}"))
            continue
        note = ""
        if label == "auto":
            engine = chosen.pop("engine")
            precision = engine.precision
            label = f"auto -> {engine.name}"
            how = "measured now" if chosen["measured"] else "choice cached"
            note = f"choosing took {chosen['seconds']:.1f} s ({how})"
        if reference is None:
            reference = frames
        peak = peaks.get(precision, math.nan)
        rows.append(Row(name, label, precision, batch, fps, cpu_fps, flops * fps / 1e9, flops * fps / 1e9 / peak,
                        float((frames - reference).abs().max()), psnr(frames, reference), rss, note))
        print(f"  {name}: {label} {precision}: {fps:.2f} frames/s", file=sys.stderr, flush=True)
    return rows


def real_frames(height: int, width: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled source and driving video at ``height x width`` (driving looped to ``count``)."""
    source = fit_frames(read_source_image(BUNDLED_SOURCE), height, width)[0]
    frames, _ = read_driving_video(BUNDLED_DRIVING)
    driving = fit_frames(frames, height, width)
    repeats = -(-count // len(driving))
    return source, driving.repeat(repeats, 1, 1, 1)[:count]


def make_clip(folder: Path, height: int, width: int, count: int) -> tuple[Path, Path]:
    """A ``count``-frame mp4 at ``height x width`` from the bundled driving video (upscaled,
    looped), and the bundled source upscaled to the same size."""
    import imageio.v3 as iio

    source, driving = real_frames(height, width, count)
    to_uint8 = lambda x: (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)  # noqa: E731
    clip = write_video(folder / f"driving-{count}.mp4", to_uint8(driving), fps=25)
    image = folder / "source.png"
    iio.imwrite(image, to_uint8(source[None])[0])
    return image, clip


@dataclass
class FirstFrame:
    request: str
    engine: str
    new_cache_seconds: float  # nan: not measured
    new_cache_engine: str
    first_seconds: float
    second_seconds: float


def seconds_to_first_frame(model: fomm.MotionModel, source: torch.Tensor, driving: torch.Tensor, precision: str,
                           backend: str) -> tuple[float, str]:
    """Seconds from ``Animator(...)`` to its first animated frame (engine choice and set-up
    included), and the engine's name."""
    start = time.perf_counter()
    animator = Animator(model, precision=precision, backend=backend, batch_size=1)
    next(animator.batches(source, driving[:1].split(1)))
    return time.perf_counter() - start, animator.engine.name


def _int8_offered(device: torch.device) -> bool:
    """Whether int8 runs here (OpenVINO and NNCF installed, an int8 dot product in the flags)."""
    return any(c.precision == "int8" for c in candidates(device, "openvino", "int8"))


def first_frame_rows(checkpoint: Path, source: torch.Tensor, driving: torch.Tensor, device: torch.device,
                     folder: Path) -> list[FirstFrame]:
    """Time to the first frame per request, on freshly loaded copies of the model (nothing built
    in this process for them yet): the first Animator and a second of the same model."""
    requests = [("fp32", "torch"), ("auto", "auto")]
    if _int8_offered(device):
        requests.append(("int8", "openvino"))
    rows = []
    for precision, backend in requests:
        new_cache, new_cache_engine = math.nan, ""
        if precision == "auto":  # as on a user's first run: nothing exported, nothing chosen
            kept = os.environ.get("FOMM_CACHE")
            os.environ["FOMM_CACHE"] = str(folder / "empty-cache")
            forget_choices()
            try:
                new_cache, new_cache_engine = seconds_to_first_frame(fomm.load_checkpoint(checkpoint, device=device), source, driving,
                                                      precision, backend)
            finally:
                if kept is None:
                    del os.environ["FOMM_CACHE"]
                else:
                    os.environ["FOMM_CACHE"] = kept
                forget_choices()
        model = fomm.load_checkpoint(checkpoint, device=device)
        first, engine = seconds_to_first_frame(model, source, driving, precision, backend)
        second, _ = seconds_to_first_frame(model, source, driving, precision, backend)
        rows.append(FirstFrame(f"precision={precision}, backend={backend}", engine, new_cache, new_cache_engine, first,
                               second))
        print(f"  first frame: {precision} {backend}: {first:.2f} s, second {second:.2f} s", file=sys.stderr,
              flush=True)
    return rows


def first_frame_table(rows: list[FirstFrame]) -> str:
    lines = ["Time to the first frame (vox-256, batch 1; seconds from `Animator(...)` to its first frame):", "",
             "| request | engine | first Animator, empty $FOMM_CACHE | first Animator of the model | "
             "second Animator, same model |", "|---|---|---|---|---|"]
    for row in rows:
        new_cache = "" if math.isnan(row.new_cache_seconds) else \
            f"{row.new_cache_seconds:.2f} ({row.new_cache_engine})"
        lines.append(f"| {row.request} | {row.engine} | {new_cache} | {row.first_seconds:.2f} | "
                     f"{row.second_seconds:.2f} |")
    return "\n".join(lines)


@dataclass
class ClipRun:
    request: str
    engine: str
    seconds: float
    max_abs_diff: float


def clip_rows(checkpoint: Path, source: torch.Tensor, driving: torch.Tensor, device: torch.device,
              batch: int, int8: bool = True) -> list[ClipRun]:
    """Seconds from ``Animator(...)`` to the last frame of ``driving`` per request, set-up and
    first frame included, each on a freshly loaded copy of the model (the choice and exports of
    earlier rows stay cached on disk, as for a user's second clip). The first request is the
    original implementation's arithmetic: the plain fp32 networks, unfused. bf16 is offered only
    where the flags show bf16 hardware."""
    requests = [("fp32", "torch"), ("auto", "auto")]
    if "bf16" in reduced_precisions(device):  # emulated bf16 is slower than fp32: no row
        requests.insert(1, ("bf16", "torch"))
    if int8 and _int8_offered(device):
        requests.append(("int8", "openvino"))
    builders: list[tuple[str, Callable[[fomm.MotionModel], Animator]]] = [
        (BASELINE, lambda model: Animator(model, batch_size=batch, engine=TorchEngine(model, "fp32", optimize=False)))]
    builders += [(f"precision={precision}, backend={backend}",
                  lambda model, precision=precision, backend=backend: Animator(model, precision=precision,
                                                                               backend=backend, batch_size=batch))
                 for precision, backend in requests]
    runs, reference = [], None
    for request, build in builders:
        model = fomm.load_checkpoint(checkpoint, device=device)
        gc.collect()
        start = time.perf_counter()
        animator = build(model)
        frames = animator.animate(source, driving)
        seconds = time.perf_counter() - start
        reference = frames if reference is None else reference
        engine = animator.engine.name if animator.engine is not None else "torch"
        runs.append(ClipRun(request, engine, seconds, float((frames - reference).abs().max())))
        print(f"  clip of {len(driving)}: {request}: {seconds:.1f} s", file=sys.stderr, flush=True)
        del animator, model
    return runs


def clip_table(runs: list[ClipRun], frames: int) -> str:
    lines = [f"A {frames}-frame clip, set-up and first frame included (vox-256; seconds from `Animator(...)` to "
             f"the last frame, a freshly loaded model, choices and exports cached on disk):", "",
             "| request | engine | seconds | x baseline | max diff to baseline |", "|---|---|---|---|---|"]
    for run in runs:
        lines.append(f"| {run.request} | {run.engine} | {run.seconds:.1f} | {runs[0].seconds / run.seconds:.2f} | "
                     f"{run.max_abs_diff:.1e} |")
    return "\n".join(lines)


@dataclass
class CommandRun:
    frames: int
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mib: float


def end_to_end(checkpoint: Path, folder: Path, threads: int, device: str) -> list[CommandRun]:
    """``fomm animate`` as a user runs it (default options: auto precision and backend) on a
    169- and a 25-frame 410x412 clip."""
    import resource

    runs = []
    for count in (169, 25):
        source, clip = make_clip(folder, 410, 412, count)
        command = [sys.executable, "-m", "fomm.cli", "animate", "--checkpoint", str(checkpoint), "--source",
                   str(source), "--driving", str(clip), "--out", str(folder / f"result-{count}.mp4"),
                   "--threads", str(threads), "--device", device]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        runs.append(CommandRun(count, seconds, cpu, after.ru_maxrss / 1024))
        print(f"  end to end: {count} frames in {seconds:.1f} s", file=sys.stderr, flush=True)
    return runs


def end_to_end_report(runs: list[CommandRun], rows: list[Row], threads: int) -> str:
    auto = next((row for row in rows if row.model == "vox-256" and row.label.startswith("auto")), None)
    model_rate = auto.frames_per_second if auto else math.nan
    model_cpu_rate = auto.frames_per_cpu_second if auto else math.nan
    long, short = runs
    marginal = (long.frames - short.frames) / (long.wall_seconds - short.wall_seconds)
    marginal_cpu = (long.frames - short.frames) / (long.cpu_seconds - short.cpu_seconds)
    lines = [f"End to end, `fomm animate` (defaults: --precision auto --backend auto), vox-256 random weights, "
             f"410x412 clip resized to 256x256, {threads} threads:", "",
             "| clip | wall s | frames/s (whole command) | CPU s | peak RSS MiB (largest so far) |",
             "|---|---|---|---|---|"]
    lines += [f"| {run.frames} frames | {run.wall_seconds:.1f} | {run.frames / run.wall_seconds:.2f} | "
              f"{run.cpu_seconds:.1f} | {run.peak_rss_mib:.0f} |" for run in runs]
    lines += ["", f"Per frame, from the difference of the two runs (start-up, model loading and the cached choice "
                  f"cancel): {marginal:.2f} frames/s = {100 * marginal / model_rate:.0f} % of the model-only auto "
                  f"rate ({model_rate:.2f}); per CPU-second {marginal_cpu:.2f} = "
                  f"{100 * marginal_cpu / model_cpu_rate:.0f} % of the model-only {model_cpu_rate:.2f}. Whole "
                  f"command on 169 frames: {100 * long.frames / long.wall_seconds / model_rate:.0f} % of the "
                  f"model-only rate."]
    return "\n".join(lines)


#: The variables that hold each runtime below the CPU's instruction set (benchmarks/isa_emulation.py).
EMULATION_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "OV_CPU_MAX_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")


def machine_header(device: torch.device, threads: int, peaks: dict[str, float], load_before: tuple) -> str:
    info = cpu_info()
    has = lambda flag: "yes" if flag in info.flags else "no"  # noqa: E731
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout if device.type == "cpu" else ""
    flags = next((line.split(":", 1)[1].split() for line in lscpu.splitlines() if line.startswith("Flags")), [])
    wanted = ("amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f", "avx2")
    emulation = " ".join(f"{name}={os.environ[name]}" for name in EMULATION_VARIABLES if os.environ.get(name))
    lines = [f"Machine: {device_summary(device)}",
             "lscpu flags (of interest): " + " ".join(flag for flag in wanted if flag in flags),
             f"Emulation: {emulation or 'none (native)'}; the flags below are those the runtimes may use",
             f"CPU: {info.model}; AMX (amx_bf16): {has('amx_bf16')}, AVX512-BF16: {has('avx512_bf16')}, "
             f"AMX-FP16: {has('amx_fp16')}, AVX-512F: {has('avx512f')}, AVX2: {has('avx2')}",
             f"torch {torch.__version__}, {threads} threads, device {device}; load average before "
             f"{load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}",
             "Measured matmul peak (2048^3): " + ", ".join(f"{name} {value:.0f} GFLOP/s"
                                                           for name, value in peaks.items())]
    return "\n".join(lines)


def table(rows: list[Row]) -> str:
    lines = ["| model | backend | precision | batch | frames/s | x baseline | frames/CPU-s | x baseline (CPU) "
             "| GFLOP/s | peak % | max diff | PSNR dB | RSS MiB | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    baselines = {row.model: row for row in rows if row.label == BASELINE}
    for row in rows:
        baseline = baselines.get(row.model)
        speedup = row.frames_per_second / baseline.frames_per_second if baseline else math.nan
        cpu_speedup = row.frames_per_cpu_second / baseline.frames_per_cpu_second if baseline else math.nan
        lines.append(f"| {row.model} | {row.label} | {row.precision} | {row.batch} | {row.frames_per_second:.2f} | "
                     f"{speedup:.2f} | {row.frames_per_cpu_second:.2f} | {cpu_speedup:.2f} | "
                     f"{row.gflop_per_second:.0f} | {100 * row.peak_fraction:.0f} | {row.max_abs_diff:.1e} | "
                     f"{row.psnr_db:.1f} | {row.rss_mib:.0f} | {row.note} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="main rows only, fewer frames, no end-to-end run")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, help="driving frames per batch (default 8; 4 with --quick)")
    parser.add_argument("--frames", type=int, help="driving frames per timed run (default 16; 8 with --quick)")
    parser.add_argument("--repeats", type=int, help="timed runs per row, median reported (default 3; 1 with --quick)")
    parser.add_argument("--models", nargs="+", default=["vox-256", "bundled"],
                        choices=["vox-256", "tpsmm-vox-256", "mraa-vox256", "bundled"],
                        help="vox-256 and the other families' vox architectures (random weights), the bundled model")
    parser.add_argument("--bundled-checkpoint", type=Path, default=BUNDLED_CHECKPOINT,
                        help="time this checkpoint as the 'bundled' model (default: the bundled model itself; e.g. "
                             "candidates/sprites-64-stage4.pt, the one shipped before it)")
    parser.add_argument("--no-end-to-end", action="store_true", help="skip timing fomm animate on a real-size clip")
    parser.add_argument("--no-first-frame", action="store_true", help="skip the time-to-first-frame rows")
    parser.add_argument("--no-rows", action="store_true", help="skip the table of backends and precisions")
    parser.add_argument("--clip-frames", type=int, default=32,
                        help="time a clip of this many frames per request, set-up included (0: skip)")
    args = parser.parse_args()
    batch = args.batch or (4 if args.quick else 8)
    count = args.frames or (8 if args.quick else 16)
    repeats = args.repeats or (1 if args.quick else 3)

    load_before = os.getloadavg()
    torch.set_num_threads(args.threads)
    device = fomm.resolve_device(args.device)
    peaks = matmul_peaks(device)
    rows: list[Row] = []
    e2e: list[CommandRun] = []
    first_frames: list[FirstFrame] = []
    clips: list[ClipRun] = []
    with tempfile.TemporaryDirectory(prefix="fomm-speed-") as temporary:
        folder = Path(temporary)
        if "vox-256" in args.models:
            torch.manual_seed(0)
            vox = fomm.build_model(fomm.load_config("vox-256"), device=device).eval()
            source, driving = real_frames(256, 256, count)
            if not args.no_rows:
                rows += bench_model("vox-256", vox, source, driving, batch, repeats, peaks, args.quick, device)
            checkpoint = fomm.save_checkpoint(folder / "vox-random.pt", vox)
            if not args.no_first_frame:
                first_frames = first_frame_rows(checkpoint, source, driving, device, folder)
            if args.clip_frames > 0:
                clips = clip_rows(checkpoint, *real_frames(256, 256, args.clip_frames), device, batch)
            if not args.quick and not args.no_end_to_end:
                e2e = end_to_end(checkpoint, folder, args.threads, args.device)
            del vox
        for name in [name for name in args.models if name in ("tpsmm-vox-256", "mraa-vox256")]:
            torch.manual_seed(0)
            other = fomm.build_model(fomm.load_config(name), device=device).eval()
            source, driving = real_frames(256, 256, count)
            rows += bench_model(name, other, source, driving, batch, repeats, peaks, args.quick, device)
            del other
        if "bundled" in args.models:
            bundled = fomm.load_checkpoint(args.bundled_checkpoint, device=device)
            height, width, _ = bundled.frame_shape
            source, driving = real_frames(height, width, 64)
            label = "bundled sprites" if args.bundled_checkpoint == BUNDLED_CHECKPOINT else args.bundled_checkpoint.stem
            rows += bench_model(label, bundled, source, driving, 2 * batch, repeats, peaks, args.quick, device)

    print(machine_header(device, args.threads, peaks, load_before))
    print()
    if rows:
        print(table(rows))
    if first_frames:
        print()
        print(first_frame_table(first_frames))
    if clips:
        print()
        print(clip_table(clips, args.clip_frames))
    if e2e:
        print()
        print(end_to_end_report(e2e, rows, args.threads))


if __name__ == "__main__":
    main()
