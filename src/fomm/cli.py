"""The ``fomm`` command: ``fomm train | animate | reconstruct | make-dataset | demo ...``.

Each job lives in its own module with a function that adds its arguments to a parser and one that
runs it; this module only wires them into argparse and turns the errors users cause (a missing file, a wrong
config key, a checkpoint that does not fit) into one clear line and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Callable, Optional, Sequence

# name -> (module, function adding the arguments, function running the job, help). Modules are
# imported only when their command runs, so `fomm --help` is instant and one job's dependencies
# never break another.
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "train": ("fomm.train", "add_train_arguments", "run_train", "train a model on a video dataset"),
    "animate": ("fomm.commands", "add_animate_arguments", "run_animate",
                "animate a source image with the motion of a driving video"),
    "demo": ("fomm.commands", "add_demo_arguments", "run_demo",
             "animate the bundled sample with the bundled model (no downloads)"),
    "export": ("fomm.export", "add_export_arguments", "run_export",
               "export the keypoint detector and generator to ONNX"),
    "make-dataset": ("fomm.data.synthetic", "add_make_dataset_arguments", "run_make_dataset",
                     "generate a synthetic dataset with ground-truth keypoints"),
    "reconstruct": ("fomm.reconstruct", "add_reconstruct_arguments", "run_reconstruct",
                    "reconstruct test videos from their first frame and report metrics"),
    "evaluate": ("fomm.evaluate", "add_evaluate_arguments", "run_evaluate",
                 "reconstruction and keypoint-quality metrics (L1, AKD, MKR, AED, keypoint error)"),
    "train-landmarks": ("fomm.landmarks", "add_train_landmarks_arguments", "run_train_landmarks",
                        "train a small landmark detector on a synthetic dataset (for AKD/MKR)"),
    "visualize": ("fomm.visualize_cmd", "add_visualize_arguments", "run_visualize",
                  "picture of keypoints, heatmaps, motion masks and occlusion for one driving frame"),
    "benchmark": ("fomm.benchmark", "add_benchmark_arguments", "run_benchmark",
                  "benchmarks: `fomm benchmark quality` trains the model variants on equal terms and compares them"),
}


def _user_error_types() -> tuple[type[BaseException], ...]:
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .errors import UserError

    types: list[type[BaseException]] = [UserError, ConfigError, CheckpointError, FileNotFoundError,
                                        FileExistsError]
    try:
        from .data.errors import DataError

        types.append(DataError)
    except ImportError:  # pragma: no cover - data package always ships
        pass
    return tuple(types)


def _load_command(name: str) -> tuple[Callable, Callable]:
    module_name, add_name, run_name, _ = COMMANDS[name]
    module = importlib.import_module(module_name)
    return getattr(module, add_name), getattr(module, run_name)


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fomm", description="First Order Motion Model: animate images with "
                                     "the motion of a video, train on your own videos.")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, _, _, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == command:  # only the chosen command's module is imported
            add, run = _load_command(name)
            add(sub)
            sub.set_defaults(handler=run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if arg in COMMANDS), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 1
    try:
        result = args.handler(args)
    except _user_error_types() as error:
        message = str(error).strip() or type(error).__name__
        print(f"fomm {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fomm {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
