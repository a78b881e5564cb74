"""TPSMM's keypoint detector: a ResNet-18 regressing K x 5 keypoints (section 3.1).

The points come in K groups of five; each group's driving and source points define one
thin-plate-spline transform (:mod:`.tps`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..blocks import full_precision
from ..resnet import ResNet18

__all__ = ["POINTS_PER_TPS", "KeypointDetector"]

#: Control points of one thin-plate-spline transform.
POINTS_PER_TPS = 5


class KeypointDetector(nn.Module):
    """``(B, C, H, W)`` images in [0, 1] -> ``(B, K*5, 2)`` keypoints, (x, y) in [-1, 1].

    ``fg_encoder`` is a torchvision-named ResNet-18 whose ``fc`` outputs the K*5*2 coordinates,
    squashed into (-1, 1) by ``2 sigmoid - 1``. The original used the three-channel stem for any
    ``num_channels``; so does this one (its checkpoints fix ``conv1`` at 3 input channels).
    """

    def __init__(self, num_tps: int) -> None:
        super().__init__()
        self.num_tps = num_tps
        self.fg_encoder = ResNet18(num_outputs=num_tps * POINTS_PER_TPS * 2)

    @property
    def num_points(self) -> int:
        return self.num_tps * POINTS_PER_TPS

    def forward(self, image: Tensor) -> Tensor:
        features = self.fg_encoder.features(image)
        # The regression head in the weights' precision even under autocast: keypoints in bf16
        # would be off by a quarter pixel at 256x256.
        with full_precision(features):
            fc = self.fg_encoder.fc
            coordinates = torch.sigmoid(fc(features.to(fc.weight.dtype))) * 2 - 1
        return coordinates.view(image.shape[0], self.num_points, 2)
