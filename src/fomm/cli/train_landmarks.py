"""``fomm train-landmarks``: train the small landmark detector of :mod:`fomm.evaluation.landmarks`
on a synthetic dataset's ground truth, for the AKD and MKR of ``fomm evaluate --landmarks``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..device import resolve_device, set_threads
from ..errors import DataError, UserError
from ..evaluation import save_landmark_detector, train_landmark_detector
from .arguments import thread_count
from .outputs import check_output_file

__all__ = ["add_arguments", "run"]

SUFFIXES = (".pt", ".pth")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", type=Path, required=True,
                        help="synthetic dataset with ground truth (train/ and test/, from `fomm make-dataset`)")
    parser.add_argument("--out", type=Path, default=Path("landmarks.pt"),
                        help="where to write the detector (.pt; default landmarks.pt)")
    parser.add_argument("--epochs", type=int, default=10, help="passes over the training frames (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and batch-order seed (default 0)")
    parser.add_argument("--batch-size", type=int, default=32, help="frames per step (default 32)")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate, cosine decay (default 2e-3)")
    parser.add_argument("--width", type=int, default=16, help="channels of the first stage (default 16)")
    parser.add_argument("--size", type=int, help="input size (default: the dataset's frame size)")
    parser.add_argument("--max-videos", type=int, help="use at most this many training videos")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--threads", type=thread_count,
                        help="CPU threads for torch (1 is often fastest on a busy shared machine)")


def run(args: argparse.Namespace) -> int:
    for option, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size), ("--width", args.width),
                          ("--size", args.size), ("--max-videos", args.max_videos)):
        if value is not None and value < 1:
            raise UserError(f"{option} must be at least 1, got {value}")
    if not args.lr > 0:
        raise UserError(f"--lr must be positive, got {args.lr}")
    if not args.dataset.is_dir():
        raise DataError(f"--dataset {args.dataset}: dataset folder not found")
    check_output_file(args.out, SUFFIXES, "--out", create_folder=True)
    device = resolve_device(args.device)
    set_threads(args.threads)

    def report(epoch: int, loss: float) -> None:
        print(f"epoch {epoch}/{args.epochs}: loss {loss:.4f}", flush=True)

    result = train_landmark_detector(args.dataset, epochs=args.epochs, seed=args.seed, batch_size=args.batch_size,
                                     learning_rate=args.lr, width=args.width, size=args.size,
                                     max_videos=args.max_videos, device=device, on_epoch=report)
    save_landmark_detector(args.out, result.detector)
    print(f"test error {result.test_error:.2f}% of width (untrained {result.initial_test_error:.2f}%), "
          f"train error {result.train_error:.2f}%, visibility accuracy {result.visibility_accuracy:.3f} "
          f"on {result.test_frames} test frames; {result.seconds:.0f} s")
    print(f"wrote {args.out}")
    return 0
