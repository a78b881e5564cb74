"""``fomm evaluate``: the reconstruction protocol on a dataset's test split, and every metric the
dataset and the given detectors allow (:mod:`fomm.evaluation`), printed as a table and written as
CSV and JSON. With ``--cross-identity``, the cross-identity protocol instead: each cross pair of
the dataset (one test video's first frame animated with another test video) against its ground
truth (:mod:`fomm.evaluation.cross_identity`). ``fomm reconstruct`` (:mod:`fomm.cli.reconstruct`)
is the same command that also writes the animated videos.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Optional

from ..data.synthetic.writer import list_cross_pairs, read_meta
from ..errors import CheckpointError, DataError, UserError
from ..evaluation import (
    MAX_DETECTOR_TEST_ERROR,
    ColorHistogramEmbedding,
    EvaluationResult,
    ReconstructionWriter,
    evaluate_dataset,
    load_feature_network,
    load_landmark_detector,
)
from ..evaluation.cross_identity import ModelAnimation, evaluate_cross_identity
from ..evaluation.metrics import COLOR_EMBEDDINGS
from .arguments import add_model_arguments, load_model, motion_settings
from .outputs import check_output_file, check_output_folder

__all__ = ["add_arguments", "add_evaluation_arguments", "run", "run_evaluation"]


#: ``--embedding`` values and what each makes.
EMBEDDINGS: dict[str, Callable[[], Optional[ColorHistogramEmbedding]]] = {**COLOR_EMBEDDINGS, "none": lambda: None}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_evaluation_arguments(parser, reconstruct=False)


def add_evaluation_arguments(parser: argparse.ArgumentParser, *, reconstruct: bool) -> None:
    """The options of ``fomm evaluate``; with ``reconstruct``, ``--out`` is the folder of the
    videos and metrics (default ``reconstruction/``) and there is no separate ``--videos``."""
    add_model_arguments(parser)  # the bundled model unless --checkpoint names another
    # Metrics are measurements: exact arithmetic unless asked otherwise (auto may pick bf16).
    parser.set_defaults(precision="fp32", backend="torch")
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", type=Path, required=True,
                      help="dataset folder (train/ and test/, or a flat folder split by the config's seed)")
    data.add_argument("--cross-identity", action="store_true",
                      help="animate the dataset's cross pairs (made by `fomm make-dataset --cross-pairs N`: one "
                           "test video's figure driven by another test video, relative motion) and measure them "
                           "against their ground truth, with the repeat-the-source baseline and the oracle")
    data.add_argument("--adapt-scale", "--adapt_scale", dest="adapt_scale", action="store_true", default=None,
                      help="with --cross-identity: scale the driving motion by the ratio of the source figure's "
                           "size to the driving figure's (the original's adapt_movement_scale; default: the "
                           "model's config)")
    data.add_argument("--motion", choices=("relative", "learned", "avd"), default=None,
                      help="with --cross-identity: how the driving motion is transferred (default: learned for a "
                           "model with a learned point transfer, as `fomm animate` runs it, else relative)")
    data.add_argument("--num-videos", type=int,
                      help="evaluate only the first N test videos, or N cross pairs (default: the config's "
                           "reconstruction_params.num_videos, else all)")
    data.add_argument("--max-train-videos", type=int, default=100,
                      help="train videos used to fit the keypoint regression (ground-truth datasets; default 100)")
    data.add_argument("--batch-size", type=int, default=8, help="driving frames per forward pass (default 8)")
    metrics = parser.add_argument_group("metrics")
    metrics.add_argument("--landmarks", type=Path,
                         help="landmark detector from `fomm train-landmarks` (enables AKD and MKR)")
    metrics.add_argument("--allow-weak-landmarks", action="store_true",
                         help=f"compute AKD and MKR even with a detector whose recorded test error is above "
                              f"{MAX_DETECTOR_TEST_ERROR:g} %% of width (by default they are n/a: a weak detector "
                              "makes AKD read near zero)")
    metrics.add_argument("--fid-network", type=Path, metavar="FILE",
                         help="TorchScript feature network (frames (B, 3, H, W) in [0, 1] -> features (B, D)) "
                              "for FID between all generated and all driving frames; fomm downloads none")
    metrics.add_argument("--embedding", choices=tuple(EMBEDDINGS), default="color-histogram",
                         help="identity embedding for AED and the cross pairs' appearance (default: colour "
                              "histogram, no weights needed; smooth-color-histogram: blurred, with soft bins, so "
                              "that resampling a sharp image by a fraction of a pixel barely counts, "
                              "docs/evaluation.md)")
    outputs = parser.add_argument_group("outputs")
    if reconstruct:
        outputs.add_argument("--out", type=Path, default=Path("reconstruction"),
                             help="folder for the reconstructed videos (in the config's reconstruction_params."
                                  "format) and metrics.csv, per_video.csv, metrics.json (default reconstruction/)")
    else:
        outputs.add_argument("--out", type=Path, help="folder for metrics.csv, per_video.csv and metrics.json")
        outputs.add_argument("--videos", type=Path,
                             help="also write the reconstructed videos into this folder (in the config's "
                                  "reconstruction_params.format)")
    outputs.add_argument("--csv", type=Path, help="also write the metrics table as CSV here (an existing folder)")
    outputs.add_argument("--json", type=Path, help="also write all results as JSON here (an existing folder)")


def run(args: argparse.Namespace) -> int:
    if args.videos is not None:
        check_output_folder(args.videos, "--videos")
    result, videos, files = run_evaluation(args, videos=args.videos)
    print(result.table())
    if files:
        print("wrote " + ", ".join(str(path) for path in files))
    if videos:
        print(f"wrote {len(videos)} videos to {args.videos}")
    return 0


def run_evaluation(args: argparse.Namespace, videos: Optional[Path]
                   ) -> tuple[EvaluationResult, list[Path], list[Path]]:
    """Check the options, load the model and detectors, evaluate, write the result files; the
    reconstructed videos go to ``videos`` (a folder the caller has checked) when given. Returns
    the result, the videos written and the result files written."""
    _check_options(args)
    model = load_model(args)
    detector = load_landmark_detector(args.landmarks, model.device) if args.landmarks is not None else None
    features = (load_feature_network(args.fid_network, model.device, args.batch_size)
                if args.fid_network is not None else None)
    embedding = EMBEDDINGS[args.embedding]()
    writer = ReconstructionWriter(videos, model.config.reconstruction_params.format) if videos is not None else None
    # The config's reconstruction_params.num_videos is the original's default limit.
    num_videos = args.num_videos if args.num_videos is not None else model.config.reconstruction_params.num_videos
    if args.cross_identity:
        animation = ModelAnimation(model, adapt_scale=motion_settings(args, model).adapt_scale,
                                   batch_size=args.batch_size, precision=args.precision, motion=args.motion)
        result = evaluate_cross_identity(
            animation, args.dataset, model.frame_shape, landmark_detector=detector, embedding=embedding,
            feature_network=features, num_pairs=args.num_videos, batch_size=args.batch_size,
            on_pair=(lambda pair, frames: writer.write(pair.truth, frames)) if writer is not None else None,
            progress=True, settings={"checkpoint": str(args.checkpoint), "precision": args.precision,
                                     "adapt_scale": animation.adapt_scale, "motion": animation.motion})
    else:
        result = evaluate_dataset(model, args.dataset, landmark_detector=detector, embedding=embedding,
                                  num_videos=num_videos, batch_size=args.batch_size,
                                  max_train_videos=args.max_train_videos, writer=writer, precision=args.precision,
                                  progress=True, feature_network=features,
                                  allow_weak_landmarks=args.allow_weak_landmarks)
    files = result.write(args.out, args.csv, args.json)
    return result, (writer.written if writer is not None else []), files


def _check_options(args: argparse.Namespace) -> None:
    """Every option that can be checked before the model loads: counts, the dataset folder and
    the output paths."""
    for option, value in (("--num-videos", args.num_videos), ("--max-train-videos", args.max_train_videos),
                          ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise UserError(f"{option} must be at least 1, got {value}")
    if not args.dataset.is_dir():
        raise DataError(f"--dataset {args.dataset}: dataset folder not found")
    read_meta(args.dataset)  # a meta.json that is not an object of dataset facts is refused here
    if args.cross_identity:
        list_cross_pairs(args.dataset)  # a dataset without pairs fails before the model loads
    elif args.adapt_scale or args.motion is not None:
        option = "--adapt-scale" if args.adapt_scale else "--motion"
        raise UserError(f"{option}: only --cross-identity moves one figure by another's motion (a video "
                        "reconstructed from its own frames has no motion to transfer)")
    if args.fid_network is not None and not args.fid_network.is_file():
        raise CheckpointError(f"--fid-network {args.fid_network}: feature network not found")
    if args.out is not None:
        check_output_folder(args.out, "--out")
    # Like every other command's output files: the folder must exist (a typo is not a new folder).
    if args.csv is not None:
        check_output_file(args.csv, (".csv",), "--csv")
    if args.json is not None:
        check_output_file(args.json, (".json",), "--json")
