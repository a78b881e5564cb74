"""``fomm train``: train a model of any family on a video dataset, resume a run, or fine-tune an
original checkpoint. ``fomm train-avd`` (:mod:`.train_avd`) trains a trained TPSMM or MRAA model's
AVD network the same way.

Multi-process: ``torchrun --nproc_per_node N -m fomm.cli train --config CFG ...`` (each process
trains on its shard; the effective batch size is ``batch_size x N``; see
:mod:`fomm.training.trainer`). Exit status: 0 done, 1 the loss diverged, 2 unusable input,
130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from ..checkpoint import CheckpointData, read_checkpoint
from ..models.registry import load_config
from ..device import set_threads
from ..errors import OutputPathError
from ..training import NonFiniteLossError, Trainer
from ..training.distributed import cleanup_distributed
from .arguments import MIXED_PRECISION_MODES, positive_int, thread_count

#: Where runs go when neither --log-dir nor a run's own checkpoint says: log/<config name>.
DEFAULT_LOG_ROOT = Path("log")


def add_arguments(parser: argparse.ArgumentParser, stage: str = "motion") -> None:
    if stage == "motion":
        parser.add_argument("--config", required=True,
                            help="YAML config in the original layout of any family, or a packaged config's name "
                                 "(vox-256, tpsmm-vox-256, mraa-vox256, sprites-64, ...)")
        parser.add_argument("--checkpoint", type=Path, default=None,
                            help="start from this checkpoint: one of ours resumes its run exactly, an original "
                                 ".pth.tar is fine-tuned with this config's schedule")
    else:
        parser.add_argument("--checkpoint", type=Path, required=True,
                            help="the trained model whose AVD network to train (ours, or an original .pth.tar); "
                                 "an AVD-stage checkpoint of ours resumes its run exactly")
        parser.add_argument("--config", help="YAML config (default: the checkpoint's own; an original .pth.tar needs "
                                             "one unless its weights fit one packaged published config)")
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="output folder (default: the checkpoint's folder when resuming, else log/<config name>)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--threads", type=thread_count,
                        help="CPU threads for torch per process (default: torch's choice; 1 helps on a busy CPU)")
    parser.add_argument("--seed", type=int, default=None, help="overrides train_params.seed")
    parser.add_argument("--mixed-precision", choices=MIXED_PRECISION_MODES, default=None,
                        help="overrides train_params.mixed_precision (default auto, unless the config says "
                             "otherwise): no (float32, exact), auto (bf16 where the CPU has AMX/AVX512-BF16 and a "
                             "probe measures it faster, bf16/fp16 on CUDA), bf16 or fp16 (CUDA)")
    parser.add_argument("--max-steps", type=positive_int, default=None,
                        help="stop after this many steps of this run and checkpoint (tests, benchmarks)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip unreadable or too-short videos with a warning (default: stop with an error)")


def run(args: argparse.Namespace) -> int:
    return train(args, "motion")


def train(args: argparse.Namespace, stage: str) -> int:
    """``fomm train`` (``stage`` motion) and ``fomm train-avd`` (``stage`` avd)."""
    set_threads(args.threads)
    if args.config is not None:
        config = load_config(args.config)
        checkpoint = read_checkpoint(args.checkpoint, config) if args.checkpoint is not None else None
    else:  # train-avd: the checkpoint's own config
        checkpoint = read_checkpoint(args.checkpoint)
        config = checkpoint.config
    if args.mixed_precision is not None and config.train_params is not None:
        config.train_params.mixed_precision = args.mixed_precision
    name = args.config if args.config is not None else checkpoint.path.parent.name
    log_dir = _check_log_dir(args.log_dir if args.log_dir is not None else default_log_dir(name, checkpoint, stage))
    completed = False
    try:
        trainer = Trainer(config, log_dir, device=args.device, checkpoint=checkpoint, seed=args.seed,
                          max_steps=args.max_steps, progress=not args.no_progress, skip_bad=args.skip_bad,
                          stage=stage)
        result = trainer.train()
        completed = not result.interrupted
    except NonFiniteLossError as error:
        # Not a bad input but a diverged run: its own exit status.
        print(f"fomm {'train' if stage == 'motion' else 'train-avd'}: error: {error}", file=sys.stderr)
        return 1
    finally:
        cleanup_distributed(completed)
    if result.interrupted:
        return 130
    if trainer.ctx.is_main:
        print(f"done ({stage} stage): epoch {result.epoch}, global step {result.global_step}, "
              f"{result.seconds_per_step:.3f} s/step; checkpoint {result.checkpoint}", file=sys.stderr)
    return 0


def default_log_dir(config: str, checkpoint: Optional[CheckpointData], stage: str = "motion") -> Path:
    """A resumed run continues in its checkpoint's folder; a new or fine-tuning run goes to
    ``log/<config name>`` (``vox-256`` for ``configs/vox-256.yaml`` and for ``vox-256``), an AVD
    stage started from a trained model to ``log/<name>-avd``."""
    resumed = checkpoint is not None and not checkpoint.is_original and \
        checkpoint.training_state.get("stage", "motion") == stage
    if resumed:
        return checkpoint.path.parent
    return DEFAULT_LOG_ROOT / (Path(config).stem + ("" if stage == "motion" else "-avd"))


def _check_log_dir(path: Path) -> Path:
    """The log folder, or the nearest of its parents that exists, must be a folder (it is
    created later, with its parents)."""
    for existing in (path, *path.parents):
        if existing.exists():
            if not existing.is_dir():
                raise OutputPathError(f"--log-dir {path}: {existing} exists and is not a folder")
            break
    return path
