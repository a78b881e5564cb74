"""TPSMM's dense motion network (section 3.2): K thin-plate-spline transforms and a background
transform, weighted per pixel into one optical flow, and occlusion masks at several resolutions.

It runs on the source image downsampled by ``scale_factor``. For each of the K+1 transforms (the
background first) it warps the source; an hourglass reads those warped images and the difference
of the driving and source keypoint heatmaps and predicts K+1 contribution maps (softmax over the
transforms). The flow is their weighted sum (Eq. 6):

    T(p) = sum_k M_k(p) T_k(p)

The occlusion masks come from the hourglass's last levels and from 2x upsamplings of its output,
so that with ``multi_mask`` there is one at each resolution of the inpainting network's features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...bundle import TensorBundle
from ...geometry import coordinate_grid, keypoints_to_gaussian, warp_by_each
from ..blocks import AntiAliasDownsample, Hourglass, UpBlock2d, at_least_fp32, full_precision, instance_norm
from .config import MULTI_MASK_LEVELS, CommonParams, DenseMotionParams
from .keypoint_detector import POINTS_PER_TPS
from .tps import TpsTransform, fit_tps

__all__ = ["DenseMotionNetwork", "TpsMotion", "background_grid", "dropout_softmax"]

#: Added to the masked softmax's denominator (the original's), so that it never divides by zero.
_DROPOUT_EPSILON = 1e-6


@dataclass
class TpsMotion(TensorBundle):
    """The dense motion of a batch, at the dense motion network's resolution ``h x w``.

    ``deformed_source`` ``(B, K+1, C, h, w)``: the source warped by each transform (background first).
    ``contribution_maps`` ``(B, K+1, h, w)``: the per-pixel weights of the transforms (sum 1).
    ``deformation`` ``(B, h, w, 2)``: the combined backward flow, source (x, y) for each driving pixel.
    ``occlusion_maps``: masks ``(B, 1, h_i, w_i)`` in [0, 1], coarsest first (with ``multi_mask``
    four of them, at 1/8, 1/4, 1/2 and 1 of the image size; else one at ``h x w``).
    """

    deformed_source: Tensor
    contribution_maps: Tensor
    deformation: Tensor
    occlusion_maps: tuple[Tensor, ...]


def background_grid(batch: int, height: int, width: int, background: Optional[Tensor],
                    like: Tensor) -> Tensor:
    """The background transform's sampling grid ``(B, 1, H, W, 2)``: the identity, or with
    ``background`` ``(B, 3, 3)`` each pixel (x, y, 1) mapped through it and de-homogenised."""
    grid = coordinate_grid(height, width, dtype=like.dtype, device=like.device)
    grid = grid.view(1, 1, height, width, 2).expand(batch, 1, height, width, 2)
    if background is None:
        return grid
    homogeneous = torch.cat([grid, grid.new_ones(batch, 1, height, width, 1)], dim=-1)
    mapped = (background.view(batch, 1, 1, 1, 3, 3) @ homogeneous.unsqueeze(-1)).squeeze(-1)
    return mapped[..., :2] / mapped[..., 2:3]


def dropout_softmax(logits: Tensor, probability: float) -> Tensor:
    """Softmax over dim 1 of ``(B, K+1, h, w)`` logits with whole transforms dropped (Eqs. 7-8).

    Each of the K TPS transforms of each batch element is dropped with ``probability`` (the
    background, index 0, never is): its weight is 0 everywhere and the others are renormalised,
    ``exp(x_k) / (sum over kept exp(x_j) + 1e-6)``. The original also divides the kept logits by
    ``1 - P``, but after taking their exponentials, so that has no effect; this computes what the
    original computes.
    """
    batch, count = logits.shape[:2]
    keep = (torch.rand(batch, count, device=logits.device) < (1 - probability)).to(logits.dtype)
    keep[:, 0] = 1
    exponentials = (logits - logits.max(dim=1, keepdim=True).values).exp() * keep[:, :, None, None]
    return exponentials / (exponentials.sum(dim=1, keepdim=True) + _DROPOUT_EPSILON)


class DenseMotionNetwork(nn.Module):
    """``forward(source, kp_driving, kp_source, background=None, dropout=None) -> TpsMotion``.

    ``source`` ``(B, C, H, W)``; keypoints ``(B, K*5, 2)``; ``background`` ``(B, 3, 3)`` or None
    (the background transform is then the identity); ``dropout``: the transform-dropout probability
    in training, None for the plain softmax.

    Attributes as the original: ``down`` (the anti-aliased downsampling, absent at scale 1),
    ``hourglass``, ``maps`` (contribution logits), ``up`` (upsamplings for the finer masks, with
    ``multi_mask``) and ``occlusion`` (one 7x7 conv per mask).
    """

    def __init__(self, common: CommonParams, params: DenseMotionParams) -> None:
        super().__init__()
        self.num_tps = common.num_tps
        self.kp_variance = params.kp_variance
        self.scale_factor = params.scale_factor
        if params.scale_factor != 1:
            self.down = AntiAliasDownsample(common.num_channels, params.scale_factor)
        num_points = common.num_tps * POINTS_PER_TPS
        # Input: the heatmap differences (a zero map for the background first) and the K+1 warped sources.
        in_features = (num_points + 1) + common.num_channels * (common.num_tps + 1)
        self.hourglass = Hourglass(params.block_expansion, in_features, params.num_blocks, params.max_features,
                                   norm=instance_norm)
        levels = self.hourglass.level_channels
        self.maps = nn.Conv2d(levels[-1], common.num_tps + 1, kernel_size=7, padding=3)

        self.multi_mask = common.multi_mask
        self.up = nn.ModuleList()  # no parameters unless filled below, as the original's absent `up`
        if common.multi_mask:
            # 1/scale_factor = 2**upsamplings: the finest masks come from upsampling the hourglass's
            # output, the others from its last levels (the configs validate that there are enough).
            self.upsamplings = round(math.log2(1 / params.scale_factor))
            from_hourglass = MULTI_MASK_LEVELS - self.upsamplings
            upsampled = [levels[-1] // 2 ** i for i in range(self.upsamplings + 1)]
            self.up.extend(UpBlock2d(upsampled[i], upsampled[i + 1], norm=instance_norm)
                           for i in range(self.upsamplings))
            mask_inputs = levels[len(levels) - from_hourglass:] + upsampled[1:]
        else:
            self.upsamplings = 0
            mask_inputs = [levels[-1]]
        self.occlusion = nn.ModuleList(nn.Conv2d(channels, 1, kernel_size=7, padding=3) for channels in mask_inputs)

    def forward(self, source: Tensor, kp_driving: Tensor, kp_source: Tensor,
                background: Optional[Tensor] = None, dropout: Optional[float] = None,
                splines: Optional[TpsTransform] = None) -> TpsMotion:
        if self.scale_factor != 1:
            source = self.down(source)
        height, width = source.shape[2:]
        # The transforms, their grids and the sampling in float32 even under autocast (a TPS solve
        # and sampling coordinates in bf16 would be off by pixels); the hourglass in its precision.
        with full_precision(source):
            kp_driving, kp_source = at_least_fp32(kp_driving), at_least_fp32(kp_source)
            background = None if background is None else at_least_fp32(background)
            heatmaps = self._heatmap_differences(kp_driving, kp_source, height, width)
            transforms = self._transform_grids(kp_driving, kp_source, background, height, width, splines)
            deformed = warp_by_each(at_least_fp32(source), transforms)  # (B, K+1, C, h, w)

        levels = self.hourglass.levels(torch.cat([heatmaps, deformed.flatten(1, 2)], dim=1))
        logits = self.maps(levels[-1])
        occlusion_logits = self._occlusion_logits(levels)
        with full_precision(logits):
            logits = at_least_fp32(logits)
            weights = F.softmax(logits, dim=1) if dropout is None else dropout_softmax(logits, dropout)
            # Eq. 6: the per-pixel weighted sum of the K+1 transforms.
            deformation = (transforms * weights[..., None]).sum(dim=1)
            occlusion_maps = tuple(torch.sigmoid(at_least_fp32(logit)) for logit in occlusion_logits)
        return TpsMotion(deformed_source=deformed, contribution_maps=weights, deformation=deformation,
                         occlusion_maps=occlusion_maps)

    def _heatmap_differences(self, kp_driving: Tensor, kp_source: Tensor, height: int, width: int) -> Tensor:
        """``(B, K*5 + 1, h, w)``: driving minus source gaussians, after a zero map for the background."""
        difference = (keypoints_to_gaussian(kp_driving, height, width, self.kp_variance)
                      - keypoints_to_gaussian(kp_source, height, width, self.kp_variance))
        zeros = difference.new_zeros(difference.shape[0], 1, height, width)
        return torch.cat([zeros, difference], dim=1)

    def _transform_grids(self, kp_driving: Tensor, kp_source: Tensor, background: Optional[Tensor],
                         height: int, width: int, splines: Optional[TpsTransform] = None) -> Tensor:
        """``(B, K+1, h, w, 2)`` sampling grids: the background transform, then the K TPS ones
        (``splines``, when fitted already, else fitted here)."""
        batch = kp_driving.shape[0]
        tps = splines if splines is not None else fit_tps(kp_driving.view(batch, self.num_tps, POINTS_PER_TPS, 2),
                                                          kp_source.view(batch, self.num_tps, POINTS_PER_TPS, 2))
        grids = tps.grid(height, width)
        return torch.cat([background_grid(batch, height, width, background, like=grids), grids], dim=1)

    def _occlusion_logits(self, levels: list[Tensor]) -> list[Tensor]:
        """Mask logits from the last hourglass levels, then from successive 2x upsamplings of its
        output, coarsest first."""
        from_hourglass = len(self.occlusion) - self.upsamplings
        inputs = list(levels[len(levels) - from_hourglass:])
        upsampled = levels[-1]
        for up in self.up:
            upsampled = up(upsampled)
            inputs.append(upsampled)
        return [conv(feature) for conv, feature in zip(self.occlusion, inputs)]
