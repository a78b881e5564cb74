"""Animation via disentanglement (AVD; Siarohin et al., "Motion Representations for Articulated
Animation", CVPR 2021, as TPSMM uses it): the pose of the driving keypoints on the identity
(shape) of the source keypoints, for animating across subjects without a matching first frame."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..blocks import mlp
from .keypoint_detector import POINTS_PER_TPS

__all__ = ["AvdNetwork"]

#: Hidden widths of the encoders; the decoder runs through them in reverse.
_HIDDEN = (256, 512, 1024)



class AvdNetwork(nn.Module):
    """``(B, K*5, 2)`` source and driving keypoints -> ``(B, K*5, 2)`` keypoints to render.

    ``id_encoder`` embeds the source keypoints (identity), ``pose_encoder`` the driving ones (pose);
    ``decoder`` maps [pose, identity] back to keypoints. The output is not bounded to [-1, 1].
    Uses batch norm: in training mode it needs batches of more than one.
    """

    def __init__(self, num_tps: int, id_bottle_size: int = 64, pose_bottle_size: int = 64) -> None:
        super().__init__()
        self.num_tps = num_tps
        size = num_tps * POINTS_PER_TPS * 2
        self.id_encoder = mlp([size, *_HIDDEN, id_bottle_size])
        self.pose_encoder = mlp([size, *_HIDDEN, pose_bottle_size])
        self.decoder = mlp([pose_bottle_size + id_bottle_size, *reversed(_HIDDEN), size])

    def forward(self, source: Tensor, driving: Tensor) -> Tensor:
        """``source`` and ``driving`` of the same batch ``B``."""
        batch = driving.shape[0]
        pose = self.pose_encoder(driving.reshape(batch, -1))
        identity = self.id_encoder(source.reshape(batch, -1))
        return self.decoder(torch.cat([pose, identity], dim=1)).view(batch, -1, 2)
