"""Multi-scale patch discriminator (pix2pix style), optionally conditioned on keypoint heatmaps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import CommonParams, DiscriminatorParams
from ...geometry import keypoints_to_gaussian
from ..blocks import channels_at, scale_key
from .keypoints import Keypoints


def _maybe_spectral_norm(conv: nn.Conv2d, enabled: bool) -> nn.Module:
    # torch.nn.utils.spectral_norm (not the parametrizations version) keeps the original state-dict
    # names weight_orig / weight_u / weight_v, and its load hook upgrades pre-1.0 checkpoints.
    return nn.utils.spectral_norm(conv) if enabled else conv


class DiscriminatorBlock(nn.Module):
    """4x4 conv (valid padding), optional instance norm, LeakyReLU(0.2), optional 2x2 avg pool."""

    def __init__(self, in_features: int, out_features: int, norm: bool, pool: bool, sn: bool) -> None:
        super().__init__()
        self.conv = _maybe_spectral_norm(nn.Conv2d(in_features, out_features, kernel_size=4), sn)
        self.norm = nn.InstanceNorm2d(out_features, affine=True) if norm else None
        self.pool = pool

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        if self.norm is not None:
            out = self.norm(out)
        out = F.leaky_relu(out, 0.2)
        if self.pool:
            out = F.avg_pool2d(out, kernel_size=2)
        return out


@dataclass
class DiscriminatorOutput:
    """Per-scale results, keyed by the scale as written in the config (``'1'``, ``'0.5'``):
    ``feature_maps[scale]`` is the list of block outputs, ``prediction_maps[scale]`` is
    ``(B, 1, h, w)`` patch scores."""

    feature_maps: dict[str, list[Tensor]]
    prediction_maps: dict[str, Tensor]


class PatchDiscriminator(nn.Module):
    """One scale: ``num_blocks`` blocks then a 1x1 conv to a patch score map."""

    def __init__(self, num_channels: int, num_kp: int, params: DiscriminatorParams) -> None:
        super().__init__()
        self.use_kp = params.use_kp
        self.kp_variance = params.kp_variance
        expansion, cap, count = params.block_expansion, params.max_features, params.num_blocks
        first_in = num_channels + (num_kp if params.use_kp else 0)
        self.down_blocks = nn.ModuleList(
            DiscriminatorBlock(first_in if i == 0 else channels_at(i, expansion, cap),
                               channels_at(i + 1, expansion, cap),
                               norm=i != 0, pool=i != count - 1, sn=params.sn)
            for i in range(count)
        )
        self.conv = _maybe_spectral_norm(nn.Conv2d(channels_at(count, expansion, cap), 1, kernel_size=1), params.sn)

    def forward(self, image: Tensor, kp: Optional[Keypoints] = None) -> tuple[list[Tensor], Tensor]:
        out = image
        if self.use_kp:
            if kp is None:
                raise ValueError("this discriminator is conditioned on keypoints (use_kp): pass kp")
            heatmap = keypoints_to_gaussian(kp.value, image.shape[2], image.shape[3], self.kp_variance)
            out = torch.cat([out, heatmap], dim=1)
        feature_maps = []
        for block in self.down_blocks:
            out = block(out)
            feature_maps.append(out)
        return feature_maps, self.conv(out)


class MultiScaleDiscriminator(nn.Module):
    """A :class:`PatchDiscriminator` per scale, applied to an image pyramid.

    ``forward(pyramid, kp)`` takes the dict of :class:`~fomm.models.blocks.ImagePyramid`
    (``prediction_<scale>`` → ``(B, C, H*s, W*s)``), as the original training code did.
    """

    def __init__(self, common: CommonParams, params: DiscriminatorParams) -> None:
        super().__init__()
        self.discs = nn.ModuleDict(
            {scale_key(s): PatchDiscriminator(common.num_channels, common.num_kp, params) for s in params.scales}
        )

    def forward(self, pyramid: dict[str, Tensor], kp: Optional[Keypoints] = None) -> DiscriminatorOutput:
        feature_maps, prediction_maps = {}, {}
        for key, disc in self.discs.items():
            scale = key.replace("-", ".")
            feature_maps[scale], prediction_maps[scale] = disc(pyramid[f"prediction_{scale}"], kp)
        return DiscriminatorOutput(feature_maps=feature_maps, prediction_maps=prediction_maps)
