"""The ``fomm`` command: one thin module per command, and the only place argparse lives.

Each command module has ``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported
only when their command runs, so ``fomm --help`` is instant and one command's dependencies never
break another. Every error a user can cause is a :class:`fomm.errors.UserError`; it is printed as
one line and the exit status is 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
import warnings
from typing import Callable, Optional, Sequence

from ..errors import UserError

# name -> (module under fomm.cli, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "animate": ("animate", "animate a source image with the motion of a driving video (or a dataset's pairs)"),
    "demo": ("demo", "animate the bundled sample with the bundled model (no downloads)"),
    "crop": ("crop", "find the face or body in an image or video and write it cropped for animation"),
    "train": ("train", "train a model of any family (FOMM, TPSMM, MRAA) on a video dataset"),
    "train-avd": ("train_avd", "train a trained TPSMM or MRAA model's AVD network (animation via disentanglement)"),
    "evaluate": ("evaluate", "reconstruction and keypoint-quality metrics (L1, AKD, MKR, AED, keypoint error)"),
    "reconstruct": ("reconstruct", "`fomm evaluate` that also writes the reconstructed videos (alias)"),
    "visualize": ("visualize", "picture of keypoints, heatmaps, motion masks and occlusion for one driving frame"),
    "export": ("export", "export a model's networks to ONNX (describe, encode the source, render)"),
    "make-dataset": ("make_dataset", "generate a synthetic dataset with ground-truth keypoints"),
    "train-landmarks": ("train_landmarks", "train a small landmark detector on a synthetic dataset (for AKD/MKR)"),
    "serve": ("serve", "the web app: animate uploads in a browser, and its API (needs fomm[app])"),
    "live": ("live", "real-time animation from a camera, a video or a stream (window, file, virtual camera)"),
    "experiment": ("experiment", "`fomm experiment variants` (the model variants on equal terms, over seeds) and "
                   "`fomm experiment curve` (a learning curve)"),
    "cache": ("cache", "what the backends' cache of exports and `auto` choices holds, and --clear to empty it"),
    "benchmark": ("experiment", "`fomm experiment` by its old name (`benchmark quality` is `experiment variants`)"),
}


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported as every other user error: one line, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _load_command(name: str) -> tuple[Callable, Callable]:
    module = importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
    return module.add_arguments, module.run


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    parser = _Parser(prog="fomm", description="First Order Motion Model: animate images with "
                                     "the motion of a video, train on your own videos.")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == command:  # only the chosen command's module is imported
            add, run = _load_command(name)
            add(sub)
            sub.set_defaults(handler=run)
    return parser


#: Libraries whose own log lines and warnings a user of ``fomm`` does not need (the ONNX exporter
#: alone printed ~200 lines per export): shown with ``--verbose`` only.
_THIRD_PARTY_LOGGERS = ("torch", "onnxscript", "onnx_ir", "onnxruntime", "openvino", "nncf", "gradio", "httpx",
                        "uvicorn", "matplotlib", "PIL")


def _configure_output(verbose: bool) -> None:
    """fomm's own messages at INFO (DEBUG with ``--verbose``); other libraries' log lines and
    Python warnings only with ``--verbose`` (their errors always)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(message)s")
    logging.getLogger("fomm").setLevel(logging.DEBUG if verbose else logging.INFO)
    if verbose:
        return
    for name in _THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"fomm(\.|$)")


def _terminate_as_interrupt(signum, frame) -> None:
    """SIGTERM (a killed job, a closed terminal) unwinds like Ctrl-C, so every atomic writer
    deletes its temporary file on the way out."""
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if arg in COMMANDS), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    _configure_output(args.verbose)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 1
    # Only the main thread may set a signal handler (``main`` also runs in a thread of a program).
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt) if in_main_thread else None
    try:
        return int(args.handler(args) or 0)
    except UserError as error:
        message = " ".join((str(error).strip() or type(error).__name__).split("\n"))
        print(f"fomm {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fomm {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
