"""Background motion predictor (the paper's background motion): one transform of the whole frame, so
that camera motion is not explained by the regions."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..blocks import HourglassEncoder, channels_at
from .config import BgPredictorParams

__all__ = ["BgMotionPredictor"]

#: Parameters predicted per ``bg_type``, and the identity they start from (the original's init).
_IDENTITY_PARAMETERS = {
    "shift": (0.0, 0.0),
    "affine": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    "perspective": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0),
}


class BgMotionPredictor(nn.Module):
    """``(source, driving)`` images ``(B, C, H, W)`` -> ``(B, 3, 3)`` homogeneous transforms that
    map driving-frame coordinates (x, y, 1) in [-1, 1] to source-frame ones.

    ``bg_type``: ``zero`` (always the identity; no parameters), ``shift`` (a translation),
    ``affine`` (the top two rows), ``perspective`` (all but the bottom-right entry, which stays 1).
    An encoder of ``num_blocks`` down blocks sees source and driving stacked on the channels; its
    last map, averaged over the image, feeds a linear layer initialised to output the identity.
    Parameter names are the original's (``encoder``, ``fc``).
    """

    def __init__(self, params: BgPredictorParams, num_channels: int) -> None:
        super().__init__()
        self.bg_type = params.bg_type
        if self.bg_type == "zero":
            return
        self.encoder = HourglassEncoder(params.block_expansion, in_features=2 * num_channels,
                                        num_blocks=params.num_blocks, max_features=params.max_features)
        identity = torch.tensor(_IDENTITY_PARAMETERS[self.bg_type])
        self.fc = nn.Linear(channels_at(params.num_blocks, params.block_expansion, params.max_features), len(identity))
        nn.init.zeros_(self.fc.weight)
        with torch.no_grad():
            self.fc.bias.copy_(identity)

    def forward(self, source: Tensor, driving: Tensor) -> Tensor:
        batch = source.shape[0]
        identity = torch.eye(3, dtype=source.dtype, device=source.device).expand(batch, 3, 3)
        if self.bg_type == "zero":
            return identity.clone()
        features = self.encoder(torch.cat([source, driving], dim=1))[-1]
        predicted = self.fc(features.mean(dim=(2, 3)))
        if self.bg_type == "shift":
            top = torch.cat([identity[:, :2, :2], predicted.unsqueeze(-1)], dim=2)
            return torch.cat([top, identity[:, 2:]], dim=1)
        top = predicted[:, :6].reshape(batch, 2, 3)
        if self.bg_type == "affine":
            return torch.cat([top, identity[:, 2:]], dim=1)
        bottom = torch.cat([predicted[:, 6:], identity[:, 2, 2:]], dim=1).unsqueeze(1)
        return torch.cat([top, bottom], dim=1)
