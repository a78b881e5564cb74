"""``fomm reconstruct``: the paper's video-reconstruction protocol on a dataset's test split.

For every test video the first frame is the source and every frame drives it with its own
keypoints, used as they are (absolute motion, as the original ``reconstruction.py``); frames are
resized to the model's frame size (from its config). Each reconstructed video is written to
``--out/<name>.mp4`` and the metrics are printed (L1 always; keypoint error, jitter and flow EPE
when the dataset has ground truth; see :mod:`fomm.evaluate`) and written to ``--out/metrics.*``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .errors import UserError
from .evaluate import EvaluationResult, Reconstruction, add_model_arguments, evaluate_dataset, load_model_for

logger = logging.getLogger(__name__)

DEFAULT_FPS = 25.0

__all__ = ["VideoWriter", "reconstruct_dataset", "add_reconstruct_arguments", "run_reconstruct"]


class VideoWriter:
    """Writes each reconstruction to ``folder/<video stem>.mp4`` at the source video's frame rate
    (25 fps for image strips and frame folders), atomically (see :func:`fomm.data.write_video`).
    Names already used in this run get the full original name instead of the stem."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise UserError(f"--out {self.folder} exists and is not a folder")
        self.written: list[Path] = []

    def __call__(self, name: str, path: Path, frames: Tensor, reconstruction: Reconstruction) -> Path:
        from .data.video import video_info, write_video

        stem = Path(name).stem if Path(name).suffix else name
        target = self.folder / f"{stem}.mp4"
        if target in self.written:
            target = self.folder / f"{name.replace('.', '_')}.mp4"
        fps = video_info(path).fps or DEFAULT_FPS
        self.folder.mkdir(parents=True, exist_ok=True)  # only once there is something to write
        pixels = (reconstruction.prediction.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        write_video(target, pixels, fps=fps)
        self.written.append(target)
        return target


def reconstruct_dataset(model, dataset: str | Path, out: str | Path, num_videos: int | None = None,
                        batch_size: int = 8, max_train_videos: int | None = 100,
                        progress: bool = False) -> tuple[EvaluationResult, list[Path]]:
    """Reconstruct the test videos of ``dataset`` into ``out`` (one mp4 each) and measure them.

    Returns the metrics (L1, and the ground-truth keypoint metrics where the dataset allows) and
    the video paths written.
    """
    writer = VideoWriter(Path(out))
    result = evaluate_dataset(model, dataset, num_videos=num_videos, batch_size=batch_size,
                              max_train_videos=max_train_videos, on_video=writer, progress=progress)
    return result, writer.written


def add_reconstruct_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("reconstruction"),
                        help="folder for the reconstructed videos and metrics.csv/json")


def run_reconstruct(args: argparse.Namespace) -> int:
    model, _ = load_model_for(args)
    # The config's reconstruction_params.num_videos is the original's default limit.
    num_videos = args.num_videos if args.num_videos is not None else model.config.reconstruction_params.num_videos
    with torch.inference_mode():
        result, written = reconstruct_dataset(model, args.dataset, args.out, num_videos=num_videos,
                                              batch_size=args.batch_size, max_train_videos=args.max_train_videos,
                                              progress=True)
    print(result.table())
    files = result.write(args.out)
    print(f"wrote {len(written)} videos ({result.settings['frames']} frames) and "
          + ", ".join(path.name for path in files) + f" to {args.out}")
    return 0
