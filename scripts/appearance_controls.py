"""What the cross pairs' appearance distance responds to: controls with a known answer.

    .venv/bin/python scripts/appearance_controls.py data/val-1001

For every cross pair of the dataset, each embedding scores (mean over frames and pairs, as
``fomm evaluate --cross-identity`` scores ``appearance``) against the truth video:

* the truth itself, shifted by a quarter and by half a pixel (bilinear): the same figure, with the
  blending of neighbouring pixels that any warp does. An identity measure should barely move;
* the truth shifted by one whole pixel: the same figure and no blending;
* the truth blurred (a Gaussian of one pixel): the same figure, washed out, which an appearance
  measure should see;
* the source repeated: the same figure, not moving (the evaluation's baseline);
* the driving video: **another figure** with the same motion, the identity error itself.

The last column, another figure over half a pixel, says how far an identity error stands above
what resampling alone costs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fomm.data.synthetic.writer import list_cross_pairs, read_meta
from fomm.errors import UserError
from fomm.evaluation.metrics import COLOR_EMBEDDINGS, EmbeddingNetwork, embedding_distances, gaussian_blur
from fomm.evaluation.protocol import read_frames

EMBEDDINGS: dict[str, EmbeddingNetwork] = {name: make() for name, make in COLOR_EMBEDDINGS.items()}
CONTROLS = ("1/4 px", "1/2 px", "1 px", "blurred", "repeat source", "other figure")


def shifted(frames: torch.Tensor, pixels: float) -> torch.Tensor:
    """``frames`` moved by ``pixels`` along x and y, bilinear, edges repeated."""
    count, _, height, width = frames.shape
    theta = torch.tensor([[1.0, 0.0, 2 * pixels / width], [0.0, 1.0, 2 * pixels / height]]).expand(count, 2, 3)
    grid = F.affine_grid(theta, list(frames.shape), align_corners=False)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)


def controls(truth: torch.Tensor, source: torch.Tensor, driving: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"1/4 px": shifted(truth, 0.25), "1/2 px": shifted(truth, 0.5), "1 px": shifted(truth, 1.0),
            "blurred": gaussian_blur(truth, 1.0), "repeat source": source[:1].expand_as(truth),
            "other figure": driving}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path, help="a dataset made with `fomm make-dataset ... --cross-pairs N`")
    args = parser.parse_args(argv)
    try:
        pairs = list_cross_pairs(args.dataset)
    except UserError as error:
        print(f"appearance_controls: error: {error}", file=sys.stderr)
        return 2
    frame_shape = read_meta(args.dataset)["frame_shape"]
    scores = {name: {control: [] for control in CONTROLS} for name in EMBEDDINGS}
    for pair in pairs:
        truth = read_frames(pair.truth, frame_shape)
        cases = controls(truth, read_frames(pair.source, frame_shape), read_frames(pair.driving, frame_shape))
        for name, embedding in EMBEDDINGS.items():
            for control, frames in cases.items():
                scores[name][control].append(embedding_distances(embedding, frames, truth).mean())
    print(f"{len(pairs)} cross pairs of {args.dataset}; distance to the truth video (mean over frames and pairs)")
    print(f"{'embedding':24}" + "".join(f"{control:>15}" for control in CONTROLS) + f"{'other / (1/2 px)':>18}")
    for name, by_control in scores.items():
        means = {control: float(np.mean(values)) for control, values in by_control.items()}
        print(f"{name:24}" + "".join(f"{means[control]:15.4f}" for control in CONTROLS)
              + f"{means['other figure'] / means['1/2 px']:18.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
