"""Which part of a sprites figure each keypoint lands on.

    .venv/bin/python scripts/keypoint_parts.py --checkpoint src/fomm/assets/sprites-64.pt --seed 1001

Renders ``--videos`` sprites videos of data seed ``--seed`` with their part labels, detects the
model's keypoints on every frame and prints, for each keypoint, the share of frames on which it
lands on each part (or on the background), then the mean over keypoints. The labels come from the
renderer and are used for this diagnosis only; nothing is trained on them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from fomm.checkpoint import load_checkpoint
from fomm.data.frames import to_float
from fomm.data.synthetic.sprites import PART_NAMES, generate_sprite_video
from fomm.geometry import to_pixels


def labels_under(value: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The label ``(T, K)`` under each keypoint: ``value`` ``(T, K, 2)`` in [-1, 1], x then y;
    ``labels`` ``(T, H, W)``. A keypoint lands on the pixel whose centre is nearest."""
    height, width = labels.shape[1:]
    pixels = np.rint(to_pixels(value, width, height)).astype(int)
    x = np.clip(pixels[..., 0], 0, width - 1)
    y = np.clip(pixels[..., 1], 0, height - 1)
    return labels[np.arange(len(labels))[:, None], y, x]


@torch.no_grad()
def part_shares(checkpoint: Path, config: Path | None, seed: int, videos: int, frames: int) -> np.ndarray:
    """``(K, 1 + parts)``: for each keypoint, the share of frames on the background (column 0)
    and on each part of :data:`PART_NAMES` (columns 1...)."""
    model = load_checkpoint(checkpoint, config)
    size = model.config.dataset_params.frame_shape[0]
    counts = None
    for index in range(videos):
        video = generate_sprite_video(seed, index, frames, size, return_labels=True)
        value = model.kp_detector(to_float(video.frames)).value.numpy()
        labels = labels_under(value, video.labels)
        if counts is None:
            counts = np.zeros((labels.shape[1], len(PART_NAMES) + 1))
        for k in range(labels.shape[1]):
            counts[k] += np.bincount(labels[:, k], minlength=len(PART_NAMES) + 1)
    return counts / counts.sum(axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=None, help="its config (for an original .pth.tar)")
    parser.add_argument("--seed", type=int, default=1001, help="data seed of the sprites videos")
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--frames", type=int, default=32)
    args = parser.parse_args()

    shares = part_shares(args.checkpoint, args.config, args.seed, args.videos, args.frames)
    names = ["background", *PART_NAMES]
    print("| keypoint | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for k, row in enumerate(shares):
        print(f"| {k} | " + " | ".join(f"{x:.2f}" for x in row) + " |")
    print("| mean | " + " | ".join(f"{x:.2f}" for x in shares.mean(axis=0)) + " |")
    covered = [name for name, column in zip(PART_NAMES, shares[:, 1:].T) if column.max() >= 0.5]
    print(f"parts that some keypoint is on for at least half the frames: {len(covered)} of {len(PART_NAMES)} "
          f"({', '.join(covered) or 'none'})")


if __name__ == "__main__":
    main()
