"""Animation via disentanglement (the paper's AVD): regions with the pose of a driving frame and
the shape (identity) of the source, for objects whose proportions differ."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...geometry import inverse_2x2
from ..blocks import mlp
from .config import AvdNetworkParams
from .regions import Regions

__all__ = ["AvdNetwork"]

#: Each region enters as its shift (2 numbers) and affine frame (4).
_NUMBERS_PER_REGION = 6
#: Hidden widths of the encoders (the decoder uses them in reverse), as in the original.
_HIDDEN = (256, 512, 1024)



class AvdNetwork(nn.Module):
    """``(identity regions, pose regions) -> regions`` of batch B (both inputs batch B).

    Two MLP encoders embed the flattened regions of the source (``id_encoder``, into
    ``id_bottle_size`` numbers) and of the driving frame (``pose_encoder``, ``pose_bottle_size``);
    the ``decoder`` turns both embeddings into ``shift`` and ``affine`` per region, and
    ``covar = affine affine^T``. The source's affine frames are first flipped where
    ``A_id A_pose^-1`` has a negative top-left entry (the original's ``revert_axis_swap``, which it
    always applied to this network whatever the config said).
    """

    def __init__(self, params: AvdNetworkParams, num_regions: int) -> None:
        super().__init__()
        self.num_regions = num_regions
        size = _NUMBERS_PER_REGION * num_regions
        self.id_encoder = mlp((size, *_HIDDEN, params.id_bottle_size))
        self.pose_encoder = mlp((size, *_HIDDEN, params.pose_bottle_size))
        self.decoder = mlp((params.pose_bottle_size + params.id_bottle_size, *reversed(_HIDDEN), size))

    def forward(self, identity: Regions, pose: Regions) -> Regions:
        if identity.affine is None or pose.affine is None:
            raise ValueError("the AVD network needs regions with affine frames (pca_based or estimate_affine)")
        flip = torch.sign(torch.matmul(identity.affine, inverse_2x2(pose.affine))[..., 0:1, 0:1])
        identity_embedding = self.id_encoder(self._flatten(identity.shift, identity.affine * flip))
        pose_embedding = self.pose_encoder(self._flatten(pose.shift, pose.affine))
        decoded = self.decoder(torch.cat([pose_embedding, identity_embedding], dim=1))
        decoded = decoded.view(decoded.shape[0], self.num_regions, _NUMBERS_PER_REGION)
        shift = decoded[:, :, :2]
        affine = decoded[:, :, 2:].reshape(decoded.shape[0], self.num_regions, 2, 2)
        return Regions(shift=shift, covar=torch.matmul(affine, affine.transpose(-1, -2)), affine=affine)

    @staticmethod
    def _flatten(shift: Tensor, affine: Tensor) -> Tensor:
        """``(B, K, 2)`` and ``(B, K, 2, 2)`` -> ``(B, 6 K)``: per region x, y, then the affine
        frame row by row."""
        return torch.cat([shift, affine.flatten(2)], dim=-1).flatten(1)
