"""The arguments every model command shares, declared once: which model (``--checkpoint``,
``--config``), where it runs (``--device``, ``--threads``, ``--precision``) and how motion is
transferred (relative or absolute, adapt scale), and turning them into a loaded model."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Optional, get_args

from ..animate import BACKENDS, MOTION_MODES, PRECISIONS, MotionSettings
from ..assets import BUNDLED_CHECKPOINT
from ..checkpoint import load_checkpoint
from ..config import TrainParams
from ..device import resolve_device, set_threads
from ..models import MotionModel

__all__ = ["MIXED_PRECISION_MODES", "add_model_arguments", "add_motion_arguments", "load_model", "motion_settings",
           "non_negative_float", "positive_int"]


#: The values of train_params.mixed_precision (see fomm.training.precision), for the commands that
#: train: ``fomm train`` and ``fomm benchmark``.
MIXED_PRECISION_MODES: tuple[str, ...] = get_args(TrainParams.model_fields["mixed_precision"].annotation)


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


#: More torch threads than any machine has cores: OpenMP sizes its thread pool to the request, and
#: a billion threads aborted the process ("libgomp: Out of memory") instead of an error.
MAX_THREADS = 1024


def thread_count(text: str) -> int:
    """An argparse type: a CPU thread count, 1 to :data:`MAX_THREADS`."""
    value = positive_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"at most {MAX_THREADS} (this machine has {os.cpu_count()} CPUs), "
                                         f"got {value}")
    return value


def add_model_arguments(parser: argparse.ArgumentParser, *, bundled_default: bool = True,
                        runtime: bool = True) -> None:
    """``--checkpoint`` (the bundled model unless ``bundled_default`` is False, then required),
    ``--config``, ``--threads``, and with ``runtime`` (the model runs here, not only loads)
    ``--device``, ``--precision`` and ``--backend``."""
    group = parser.add_argument_group("model")
    if bundled_default:
        group.add_argument("--checkpoint", type=Path, default=BUNDLED_CHECKPOINT,
                           help="checkpoint, ours or an original .pth.tar (default: the bundled sprites model)")
    else:
        group.add_argument("--checkpoint", type=Path, required=True,
                           help="checkpoint, ours (checkpoint.pth.tar of a run) or an original .pth.tar")
    group.add_argument("--config", help="YAML config, or a packaged config's name (vox-256, taichi-256, ...); "
                       "required for original checkpoints, ours carry theirs")
    group.add_argument("--threads", type=thread_count, help="CPU threads for torch (default: torch's choice)")
    if not runtime:
        return
    group.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    group.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="arithmetic of the networks: auto (default: the fastest measured on this machine whose "
                            "frames stay within 40 dB PSNR of fp32), fp32 (exact), bf16 or fp16")
    group.add_argument("--backend", choices=BACKENDS, default="auto",
                       help="what runs the networks: auto (default: the fastest installed one measured good here; "
                            "exports the model once into $FOMM_CACHE when that pays), torch, onnxruntime or openvino")


def add_motion_arguments(parser: argparse.ArgumentParser) -> None:
    """Relative, absolute, AVD or learned motion and adapt scale; unset ones come from the model's config
    (FOMM: ``animate_params.normalization_params``)."""
    group = parser.add_argument_group("motion transfer (defaults: the model's config)")
    motion = group.add_mutually_exclusive_group()
    motion.add_argument("--motion", choices=MOTION_MODES,
                        help="relative: the driving motion relative to its first (or best) frame, moved onto the "
                             "source; absolute: the driving poses as they are; avd: the model's AVD network "
                             "(TPSMM and MRAA models that have one); learned: relative motion corrected by the "
                             "model's learned point transfer (FOMM models that have one, such as the bundled "
                             "model; their default)")
    motion.add_argument("--relative", dest="motion", action="store_const", const="relative",
                        help="same as --motion relative")
    motion.add_argument("--absolute", dest="motion", action="store_const", const="absolute",
                        help="same as --motion absolute")
    group.add_argument("--adapt-scale", "--adapt_scale", dest="adapt_scale", action="store_true", default=None,
                       help="scale relative motion by the ratio of the source's and the reference frame's pose sizes")


def load_model(args: argparse.Namespace) -> MotionModel:
    """The model named by :func:`add_model_arguments`' options, on the chosen device."""
    set_threads(getattr(args, "threads", None))
    device = resolve_device(getattr(args, "device", "cpu"))
    return load_checkpoint(args.checkpoint, config=args.config, device=device)


def motion_settings(args: argparse.Namespace, model: MotionModel) -> MotionSettings:
    """The motion options given on the command line, the model's defaults for the others."""
    defaults = model.default_motion()
    mode: Optional[str] = getattr(args, "motion", None)
    adapt: Optional[bool] = getattr(args, "adapt_scale", None)
    return MotionSettings(mode=defaults.mode if mode is None else mode,
                          adapt_scale=defaults.adapt_scale if adapt is None else adapt,
                          relative_jacobian=defaults.relative_jacobian)
