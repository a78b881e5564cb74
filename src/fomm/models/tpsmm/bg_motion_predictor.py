"""TPSMM's background motion predictor: one affine transform for the whole background (section
3.2), regressed by a ResNet-18 from the source and driving images stacked along the channels."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..resnet import ResNet18

__all__ = ["BackgroundMotionPredictor"]


class BackgroundMotionPredictor(nn.Module):
    """``(B, 3, H, W)`` source and driving -> ``(B, 3, 3)`` affine transforms, last row ``[0, 0, 1]``.

    The transform maps driving coordinates (x, y, 1) to source coordinates. ``bg_encoder`` is a
    ResNet-18 with a 6-channel ``conv1`` and a 6-output ``fc`` initialised to zero weights and the
    identity as bias, so an untrained predictor outputs the identity for any input. Three-channel
    images only, as the original (its ``conv1`` takes 6 channels).
    """

    def __init__(self) -> None:
        super().__init__()
        self.bg_encoder = ResNet18(num_outputs=6, in_channels=6)
        nn.init.zeros_(self.bg_encoder.fc.weight)
        with torch.no_grad():
            self.bg_encoder.fc.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def forward(self, source: Tensor, driving: Tensor) -> Tensor:
        batch = source.shape[0]
        top_rows = self.bg_encoder(torch.cat([source, driving], dim=1)).view(batch, 2, 3)
        last_row = top_rows.new_tensor([0.0, 0.0, 1.0]).expand(batch, 1, 3)
        return torch.cat([top_rows, last_row], dim=1)
