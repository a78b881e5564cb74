"""``fomm benchmark quality``: train the model variants on equal terms and compare their metrics
(:mod:`fomm.evaluation.ablation`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import OutputPathError, UserError
from ..evaluation.ablation import KINDS, VARIANTS, run_quality_benchmark
from .arguments import positive_int
from .outputs import check_output_folder

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    quality = benchmarks.add_parser("quality", help="train the model variants on equal terms and compare their "
                                    "metrics", description="Train the model variants for the same number of "
                                    "iterations from the same seed and data, evaluate each, and tabulate.")
    quality.add_argument("--dataset", required=True,
                         help=f"{' or '.join(KINDS)} (generated into OUT/dataset), or a dataset folder")
    quality.add_argument("--budget", type=int, required=True, help="training iterations per variant")
    quality.add_argument("--out", type=Path, help="output folder (default: log/benchmark-quality-<dataset>)")
    quality.add_argument("--videos", type=int, default=40, help="videos of a generated dataset (default 40)")
    quality.add_argument("--frames", type=int, default=32, help="frames per video of a generated dataset (default 32)")
    quality.add_argument("--size", type=int, default=64, help="frame size of a generated dataset (default 64)")
    quality.add_argument("--seed", type=int, default=0, help="dataset, training and landmark-detector seed")
    quality.add_argument("--variants", default=",".join(VARIANTS),
                         help="comma-separated keys: " + ", ".join(f"{v.key} {v.name}" for v in VARIANTS.values()))
    quality.add_argument("--landmarks", type=Path, help="landmark detector (fomm train-landmarks) for AKD/MKR")
    quality.add_argument("--landmark-epochs", type=int, default=10,
                         help="epochs of the landmark detector trained when --landmarks is not given")
    quality.add_argument("--eval-videos", type=int, help="evaluate on the first N test videos only")
    quality.add_argument("--max-train-videos", type=int, default=16,
                         help="train videos used to fit the keypoint regression (default 16)")
    quality.add_argument("--batch-size", type=int, help="overrides the config's batch size")
    quality.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1)")
    quality.add_argument("--progress", action="store_true", help="progress bars while training")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "benchmark", None) != "quality":
        raise UserError("choose a benchmark: fomm benchmark quality --dataset ... --budget ...")
    for option, value in (("--budget", args.budget), ("--videos", args.videos), ("--frames", args.frames),
                          ("--size", args.size), ("--landmark-epochs", args.landmark_epochs),
                          ("--eval-videos", args.eval_videos), ("--max-train-videos", args.max_train_videos),
                          ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise UserError(f"{option} must be at least 1, got {value}")
    variants = [key.strip() for key in args.variants.split(",") if key.strip()]
    name = args.dataset if args.dataset in KINDS else Path(args.dataset).name
    out = _output_folder(args.out if args.out is not None else Path("log") / f"benchmark-quality-{name}")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    result = run_quality_benchmark(args.dataset, args.budget, out, videos=args.videos, frames=args.frames,
                                   size=args.size, seed=args.seed, variants=variants, landmarks=args.landmarks,
                                   landmark_epochs=args.landmark_epochs, eval_videos=args.eval_videos,
                                   max_train_videos=args.max_train_videos, batch_size=args.batch_size,
                                   threads=args.threads, progress=args.progress, log=log)
    print(result.markdown())
    print(f"wrote {out}/table.md, table.csv, results.json, loss_curves.png, metrics.png", file=sys.stderr)
    return 0


def _output_folder(out: Path) -> Path:
    """``out`` checked as an output folder; its parent folders are created (a benchmark keeps its
    runs under a fresh tree such as log/ or /tmp/bq/)."""
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"--out {out} exists and is not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputPathError(f"--out {out}: cannot create folder {out.parent} ({error.strerror})") from None
    return check_output_folder(out, "--out")
