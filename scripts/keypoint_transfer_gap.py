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

With ``--pixels`` (FOMM: its description has jacobians) a second table says which part of that
difference costs pixels: L1 on the moving pixels (as ``fomm evaluate --cross-identity``) of the
source rendered with the transferred description (the animation), with the truth's (the oracle),
with the transferred points and the truth's jacobians, with the truth's points and the transferred
jacobians, and with the truth's description but keypoint k alone transferred, for every k. The
total row pools every moving pixel of every pair.

    .venv/bin/python scripts/keypoint_transfer_gap.py --checkpoint C --dataset data/val-1001 --pixels
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from fomm.checkpoint import load_checkpoint
from fomm.data.synthetic.writer import list_cross_pairs
from fomm.errors import UserError
from fomm.evaluation.cross_identity import PairData, read_pair
from fomm.geometry import to_pixels
from fomm.bundle import TensorBundle
from fomm.models.family import MotionModel, MotionSettings
from fomm.models.fomm.keypoints import Keypoints


@dataclass
class PairGap:
    """One pair: ``points_px`` the mean point distance in pixels, ``jacobian`` the mean absolute
    jacobian difference (None for descriptions without jacobians)."""

    name: str
    points_px: float
    jacobian: Optional[float]


@dataclass
class PairDescriptions:
    """What separates a pair's animation from its oracle, on the model's device: ``moved``, the
    driving video's description moved onto the source by relative transfer (what the animation
    renders), ``found``, the description of the truth frames (what the oracle renders), and
    ``source``, the source image's (what both are rendered from)."""

    source: TensorBundle
    moved: TensorBundle
    found: TensorBundle


@torch.no_grad()
def describe_pair(model: MotionModel, source: torch.Tensor, driving: torch.Tensor, truth: torch.Tensor
                  ) -> PairDescriptions:
    """``source`` ``(1, C, H, W)``, ``driving`` and ``truth`` ``(T, C, H, W)`` in [0, 1] at the
    model's frame size."""
    device = model.device
    source_description = model.describe(source.to(device))
    driving_description = model.describe(driving.to(device))
    moved = model.transfer(source_description, driving_description, driving_description[:1],
                           MotionSettings(mode="relative"))
    return PairDescriptions(source_description, moved, model.describe(truth.to(device)))


def _gap(model: MotionModel, descriptions: PairDescriptions, width: int, height: int) -> tuple[float, Optional[float]]:
    moved, found = descriptions.moved, descriptions.found
    distance = (to_pixels(model.points(moved), width, height) - to_pixels(model.points(found), width, height))
    points_px = float(distance.norm(dim=-1).mean())
    moved_jacobian, found_jacobian = getattr(moved, "jacobian", None), getattr(found, "jacobian", None)
    if moved_jacobian is None or found_jacobian is None:
        return points_px, None
    return points_px, float((moved_jacobian - found_jacobian).abs().mean())


def transfer_gap(model: MotionModel, source: torch.Tensor, driving: torch.Tensor, truth: torch.Tensor
                 ) -> tuple[float, Optional[float]]:
    """The images as :func:`describe_pair`'s: the mean point distance in pixels between the
    relative transfer of the driving description and the truth's description, and the mean
    jacobian difference or None."""
    height, width = truth.shape[-2:]
    return _gap(model, describe_pair(model, source, driving, truth), width, height)


@dataclass
class PixelDecomposition:
    """One pair's L1 on moving pixels rendered from mixes of the transferred and the truth's
    descriptions (module docstring); ``moving_values`` counts the values each mean is over."""

    name: str
    moving_values: int
    transferred: float
    oracle: float
    points_transferred: float
    jacobians_transferred: float
    each_point_transferred: list[float]

    def row(self) -> list[float]:
        return [self.transferred, self.oracle, self.points_transferred, self.jacobians_transferred,
                *self.each_point_transferred]


def _mix(transferred: Keypoints, truth: Keypoints, points: bool, jacobians: bool,
         only: Optional[int] = None) -> Keypoints:
    """The truth's description with the transferred points and/or jacobians (of keypoint ``only``
    alone, or of all)."""
    which = slice(None) if only is None else slice(only, only + 1)
    value, jacobian = truth.value.clone(), truth.jacobian.clone()
    if points:
        value[:, which] = transferred.value[:, which]
    if jacobians:
        jacobian[:, which] = transferred.jacobian[:, which]
    return Keypoints(value=value, jacobian=jacobian)


@torch.no_grad()
def pixel_decomposition(model: MotionModel, name: str, data: PairData,
                        descriptions: Optional[PairDescriptions] = None) -> PixelDecomposition:
    """:class:`PixelDecomposition` of one pair read by ``fomm.evaluation.cross_identity.read_pair``
    at the model's frame size (``descriptions``: the pair's, when already computed). Raises
    UserError for a model whose description has no jacobians."""
    if descriptions is None:
        descriptions = describe_pair(model, data.source[None], data.driving, data.truth)
    source, transferred, truth = descriptions.source, descriptions.moved, descriptions.found
    if getattr(truth, "jacobian", None) is None:
        raise UserError(f"--pixels needs a description with jacobians (FOMM's); a {model.family} model has none")
    moving = data.moving & data.defined
    state = model.encode_source(data.source[None].to(model.device))

    def moving_l1(description: Keypoints) -> float:
        frames = model.render(state, source, description).prediction.float().clamp(0, 1).cpu()
        return float((frames - data.truth).abs().permute(0, 2, 3, 1)[moving].mean())

    return PixelDecomposition(
        name, int(moving.sum()) * 3, moving_l1(transferred), moving_l1(truth),
        moving_l1(_mix(transferred, truth, points=True, jacobians=False)),
        moving_l1(_mix(transferred, truth, points=False, jacobians=True)),
        [moving_l1(_mix(transferred, truth, True, True, only=k)) for k in range(truth.value.shape[1])])


def dataset_figures(model: MotionModel, dataset: Path, pixels: bool
                    ) -> list[tuple[PairGap, Optional[PixelDecomposition]]]:
    """For every cross pair of ``dataset``, read and described once: its :class:`PairGap`, and
    with ``pixels`` its :class:`PixelDecomposition` (else None)."""
    figures = []
    for pair in list_cross_pairs(dataset):
        data = read_pair(pair, model.frame_shape)
        descriptions = describe_pair(model, data.source[None], data.driving, data.truth)
        height, width = data.truth.shape[-2:]
        gap = PairGap(pair.name, *_gap(model, descriptions, width, height))
        figures.append((gap, pixel_decomposition(model, pair.name, data, descriptions) if pixels else None))
    return figures


def dataset_gaps(model: MotionModel, dataset: Path) -> list[PairGap]:
    """:func:`transfer_gap` for every cross pair of ``dataset``."""
    return [gap for gap, _ in dataset_figures(model, dataset, pixels=False)]


def dataset_decompositions(model: MotionModel, dataset: Path) -> list[PixelDecomposition]:
    """:func:`pixel_decomposition` for every cross pair of ``dataset``."""
    return [decomposition for _, decomposition in dataset_figures(model, dataset, pixels=True)]


def _print_decompositions(rows: list[PixelDecomposition]) -> None:
    points = len(rows[0].each_point_transferred)
    print("pair,transferred,oracle,points_transferred,jacobians_transferred,"
          + ",".join(f"point_{k}_transferred" for k in range(points)))
    for row in rows:
        print(row.name + "," + ",".join(f"{value:.5f}" for value in row.row()))
    weights = np.array([row.moving_values for row in rows], dtype=float)
    pooled = (np.array([row.row() for row in rows]) * weights[:, None]).sum(axis=0) / weights.sum()
    print("total," + ",".join(f"{value:.5f}" for value in pooled))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--dataset", type=Path, required=True, help="a dataset with cross pairs")
    parser.add_argument("--pixels", action="store_true",
                        help="also the L1 on moving pixels of mixes of the two descriptions (FOMM)")
    args = parser.parse_args()
    try:
        figures = dataset_figures(load_checkpoint(args.checkpoint, args.config), args.dataset, args.pixels)
    except UserError as error:  # a missing or pair-less dataset, an unreadable checkpoint
        print(f"error: {error}", file=sys.stderr)
        return 2
    gaps = [gap for gap, _ in figures]
    print("pair,points_px,jacobian")
    for gap in gaps:
        print(f"{gap.name},{gap.points_px:.3f},{'' if gap.jacobian is None else f'{gap.jacobian:.4f}'}")
    jacobians = [gap.jacobian for gap in gaps if gap.jacobian is not None]
    mean_jacobian = f"{sum(jacobians) / len(jacobians):.4f}" if jacobians else ""
    print(f"mean,{sum(gap.points_px for gap in gaps) / len(gaps):.3f},{mean_jacobian}")
    if args.pixels:
        print()
        _print_decompositions([decomposition for _, decomposition in figures])
    return 0


if __name__ == "__main__":
    sys.exit(main())
