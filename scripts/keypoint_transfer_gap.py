"""How far a model's own motion description carries over from one figure to another.

    .venv/bin/python scripts/keypoint_transfer_gap.py --checkpoint src/fomm/assets/sprites-64.pt \
        --dataset data/val-1001

For every cross pair of ``--dataset`` (``fomm make-dataset --cross-pairs``), the driving video's
description is moved onto the source by the model's relative transfer, as ``fomm animate`` does,
and compared with the description the model finds on the truth frames. The animation and the
oracle of ``fomm evaluate --cross-identity`` (the source animated by the truth video) render the
same source from these two descriptions, so this is the whole of what separates them, seen in the
model's own terms. Prints per pair and in total: the mean distance between the two sets of points
(pixels of the model's frame) and, for descriptions with jacobians (FOMM), the mean absolute
difference of the jacobians.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from fomm.checkpoint import load_checkpoint
from fomm.data.synthetic.writer import list_cross_pairs
from fomm.errors import UserError
from fomm.evaluation.protocol import read_frames
from fomm.geometry import to_pixels
from fomm.models.family import MotionModel, MotionSettings


@dataclass
class PairGap:
    """One pair: ``points_px`` the mean point distance in pixels, ``jacobian`` the mean absolute
    jacobian difference (None for descriptions without jacobians)."""

    name: str
    points_px: float
    jacobian: Optional[float]


@torch.no_grad()
def transfer_gap(model: MotionModel, source: torch.Tensor, driving: torch.Tensor, truth: torch.Tensor
                 ) -> tuple[float, Optional[float]]:
    """``source`` ``(1, C, H, W)``, ``driving`` and ``truth`` ``(T, C, H, W)`` in [0, 1] at the
    model's frame size: the mean point distance in pixels between the relative transfer of the
    driving description and the truth's description, and the mean jacobian difference or None."""
    device = model.device
    describe = model.describe
    driving_description = describe(driving.to(device))
    moved = model.transfer(describe(source.to(device)), driving_description, driving_description[:1],
                           MotionSettings(mode="relative"))
    found = describe(truth.to(device))
    height, width = truth.shape[-2:]
    distance = (to_pixels(model.points(moved), width, height) - to_pixels(model.points(found), width, height))
    points_px = float(distance.norm(dim=-1).mean())
    moved_jacobian, found_jacobian = getattr(moved, "jacobian", None), getattr(found, "jacobian", None)
    if moved_jacobian is None or found_jacobian is None:
        return points_px, None
    return points_px, float((moved_jacobian - found_jacobian).abs().mean())


def dataset_gaps(model: MotionModel, dataset: Path) -> list[PairGap]:
    """:func:`transfer_gap` for every cross pair of ``dataset``."""
    shape = model.frame_shape
    gaps = []
    for pair in list_cross_pairs(dataset):
        source = read_frames(pair.source, shape)[:1]
        driving, truth = read_frames(pair.driving, shape), read_frames(pair.truth, shape)
        gaps.append(PairGap(pair.name, *transfer_gap(model, source, driving, truth)))
    return gaps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--dataset", type=Path, required=True, help="a dataset with cross pairs")
    args = parser.parse_args()
    try:
        gaps = dataset_gaps(load_checkpoint(args.checkpoint, args.config), args.dataset)
    except UserError as error:  # a missing or pair-less dataset, an unreadable checkpoint
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("pair,points_px,jacobian")
    for gap in gaps:
        print(f"{gap.name},{gap.points_px:.3f},{'' if gap.jacobian is None else f'{gap.jacobian:.4f}'}")
    jacobians = [gap.jacobian for gap in gaps if gap.jacobian is not None]
    mean_jacobian = f"{sum(jacobians) / len(jacobians):.4f}" if jacobians else ""
    print(f"mean,{sum(gap.points_px for gap in gaps) / len(gaps):.3f},{mean_jacobian}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
