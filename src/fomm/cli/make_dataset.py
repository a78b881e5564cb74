"""``fomm make-dataset``: a synthetic dataset with ground-truth keypoints, written to disk.

    fomm make-dataset sprites --out DIR --videos N --frames T --size 64 [--seed S] [--format F]
    fomm make-dataset warped-photos --out DIR ... [--cross-pairs N] [--train-cross-pairs N]
"""

from __future__ import annotations

import argparse

from ..data.synthetic.writer import DEFAULT_FORMAT, KINDS, VIDEO_FORMATS, make_dataset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=KINDS, help="which synthetic dataset to generate")
    parser.add_argument("--out", required=True, help="output folder (gets train/, test/, meta.json)")
    parser.add_argument("--videos", type=int, default=200, help="number of videos (default 200)")
    parser.add_argument("--frames", type=int, default=32, help="frames per video, at least 2 (default 32)")
    parser.add_argument("--size", type=int, default=64, help="square frame side in pixels (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--format", dest="video_format", choices=VIDEO_FORMATS, default=DEFAULT_FORMAT,
                        help=f"video storage format (default {DEFAULT_FORMAT}: lossless, one file per "
                             "video, fastest to read)")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="share of videos in test/ (default 0.2)")
    parser.add_argument("--cross-pairs", type=int, default=0, metavar="N",
                        help="also write N cross-identity pairs of test videos into cross/: the ground-truth "
                             "video of one video's figure moved by another's motion, for `fomm evaluate "
                             "--cross-identity` (default 0)")
    parser.add_argument("--train-cross-pairs", type=int, default=0, metavar="N",
                        help="also write N cross-identity pairs of training videos into cross-train/, for "
                             "training on cross pairs (dataset_params.cross_pair_ratio; default 0)")
    parser.add_argument("--fps", type=int, default=25, help="frame rate for mp4 and meta.json, 1 to 240 (default 25)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes, at least 1 (default: one per CPU core for 8+ videos)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing dataset in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    summary = make_dataset(
        kind=args.kind,
        out=args.out,
        videos=args.videos,
        frames=args.frames,
        size=args.size,
        seed=args.seed,
        test_fraction=args.test_fraction,
        video_format=args.video_format,
        fps=args.fps,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=not args.quiet,
        cross_pairs=args.cross_pairs,
        train_cross_pairs=args.train_cross_pairs,
    )
    print(summary.describe())
    return 0
