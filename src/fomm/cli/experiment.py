"""``fomm experiment variants``: train the model variants on equal terms, over several seeds, and
compare their metrics (:mod:`fomm.experiments.variants`); ``fomm experiment curve``: the learning
curve of one variant, to choose the budget (:mod:`fomm.experiments.learning_curve`).
``fomm benchmark quality`` and ``fomm benchmark curve`` are the old spellings (aliases)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import OutputPathError, UserError
from ..experiments.variants import DEFAULT_VARIANTS, KINDS, SPLITS, VARIANTS, run_variants_experiment
from .arguments import MIXED_PRECISION_MODES, positive_int, thread_count
from .outputs import check_output_folder

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    experiments = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT")
    quality = experiments.add_parser("variants", aliases=["quality"],
                                     help="train the model variants on equal terms and compare their metrics "
                                     "(alias: quality)", description="Train the model variants for the same number of "
                                     "iterations with the same seeds and data, evaluate each (self-reconstruction and "
                                     "cross-identity), and tabulate the mean ± std over seeds, the pre-registered "
                                     "comparisons (t and permutation tests, Holm-adjusted) and the exploratory ones.")
    _add_common(quality, "training iterations per variant and seed", default_split="test")
    quality.add_argument("--seed", type=int, default=0,
                         help="the first training seed, and the dataset and landmark-detector seed unless --data-seed "
                              "is given (default 0)")
    quality.add_argument("--data-seed", type=int,
                         help="dataset and landmark-detector seed (default --seed): with it, processes that share "
                              "--out can train disjoint seeds of one experiment")
    quality.add_argument("--seeds", type=positive_int, default=1,
                         help="training seeds per variant: --seed, --seed + 1, ... (default 1; at least 8 for a "
                         "verdict on the pre-registered comparisons)")
    quality.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                         help=f"comma-separated keys (default {','.join(DEFAULT_VARIANTS)}): "
                         + ", ".join(f"{v.key} {v.name}" for v in VARIANTS.values()))

    curve = experiments.add_parser("curve", help="the learning curve of one variant, to choose the budget",
                                  description="Train one variant once, evaluating it every N iterations, and "
                                  "write the metrics against the iteration (curve.csv, curve.png).")
    _add_common(curve, "training iterations in all", default_split="validation")
    curve.add_argument("--every", type=int, required=True, help="evaluate (and keep a checkpoint) every N iterations")
    curve.add_argument("--seed", type=int, default=0, help="dataset, landmark-detector and training seed (default 0)")
    curve.add_argument("--variant", default="c", choices=[k for k, v in VARIANTS.items() if v.evaluates is None],
                       help="the variant (default c, full FOMM): " + ", ".join(f"{v.key} {v.name}"
                                                                               for v in VARIANTS.values()))


def _add_common(parser: argparse.ArgumentParser, budget_help: str, default_split: str) -> None:
    parser.add_argument("--dataset", required=True,
                        help=f"{' or '.join(KINDS)} (generated into OUT/dataset), or a dataset folder")
    parser.add_argument("--split", choices=SPLITS, default=default_split,
                        help=f"what the runs are evaluated on (default {default_split}): test, the training dataset's "
                             "test videos and cross pairs, for reporting; validation, those of a second dataset "
                             "(data seed + 1000, never trained on), for choices such as the budget")
    parser.add_argument("--budget", type=int, required=True, help=budget_help)
    parser.add_argument("--out", type=Path, help="output folder (default: log/experiment-<experiment>-<dataset>)")
    parser.add_argument("--videos", type=int, default=40, help="videos of a generated dataset (default 40)")
    parser.add_argument("--frames", type=int, default=32, help="frames per video of a generated dataset (default 32)")
    parser.add_argument("--size", type=int, default=64, help="frame size of a generated dataset (default 64)")
    parser.add_argument("--landmarks", type=Path, help="landmark detector (fomm train-landmarks) for AKD/MKR")
    parser.add_argument("--landmark-epochs", type=int, default=10,
                        help="epochs of the landmark detector trained when --landmarks is not given")
    parser.add_argument("--eval-videos", type=int, help="evaluate on the first N test videos only")
    parser.add_argument("--max-train-videos", type=int, default=16,
                        help="train videos used to fit the keypoint regression (default 16)")
    parser.add_argument("--batch-size", type=int, help="overrides the config's batch size")
    parser.add_argument("--mixed-precision", choices=MIXED_PRECISION_MODES,
                        help="overrides train_params.mixed_precision for every variant alike (auto: bf16 where "
                             "the CPU has AMX/AVX512-BF16 and measures faster)")
    parser.add_argument("--threads", type=thread_count, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--progress", action="store_true", help="progress bars while training")


def run(args: argparse.Namespace) -> int:
    experiment = {"quality": "variants"}.get(getattr(args, "experiment", None), getattr(args, "experiment", None))
    if experiment not in ("variants", "curve"):
        raise UserError("choose an experiment: fomm experiment variants --dataset ... --budget ... [--seeds N], or "
                        "fomm experiment curve --dataset ... --budget ... --every N")
    for option, value in (("--budget", args.budget), ("--videos", args.videos), ("--frames", args.frames),
                          ("--size", args.size), ("--landmark-epochs", args.landmark_epochs),
                          ("--eval-videos", args.eval_videos), ("--max-train-videos", args.max_train_videos),
                          ("--batch-size", args.batch_size), ("--every", getattr(args, "every", None))):
        if value is not None and value < 1:
            raise UserError(f"{option} must be at least 1, got {value}")
    name = args.dataset if args.dataset in KINDS else Path(args.dataset).name
    out = _output_folder(args.out if args.out is not None else Path("log") / f"experiment-{experiment}-{name}")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    common = dict(videos=args.videos, frames=args.frames, size=args.size, seed=args.seed, landmarks=args.landmarks,
                  landmark_epochs=args.landmark_epochs, eval_videos=args.eval_videos,
                  max_train_videos=args.max_train_videos, batch_size=args.batch_size,
                  mixed_precision=args.mixed_precision, split=args.split, threads=args.threads,
                  progress=args.progress, log=log)
    if experiment == "curve":
        from ..experiments.learning_curve import run_learning_curve  # only this command needs it

        curve = run_learning_curve(args.dataset, args.budget, args.every, out, variant=args.variant, **common)
        print(curve.markdown())
        print(f"wrote {out}/curve.md, curve.csv, curve.json, curve.png", file=sys.stderr)
        return 0

    variants = [key.strip() for key in args.variants.split(",") if key.strip()]
    result = run_variants_experiment(args.dataset, args.budget, out, seeds=args.seeds, variants=variants,
                                     data_seed=args.data_seed, **common)
    print(result.markdown())
    print(f"wrote {out}/table.md, table.csv, runs.csv, results.json, loss_curves.png, metrics.png",
          file=sys.stderr)
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
