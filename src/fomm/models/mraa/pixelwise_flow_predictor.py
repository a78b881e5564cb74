"""Pixelwise flow predictor: the dense motion from the source to a
driving frame as a per-pixel mixture of the regions' affine motions and the background motion,
and an occlusion map."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...geometry import coordinate_grid, inverse_2x2, keypoints_to_gaussian, warp_by_each
from ..blocks import AntiAliasDownsample, Hourglass, at_least_fp32, full_precision
from .config import PixelwiseFlowPredictorParams
from .regions import Regions
from .sampling import sample

__all__ = ["PixelwiseFlow", "PixelwiseFlowPredictor", "region_gaussians", "sparse_motions"]


@dataclass
class PixelwiseFlow:
    """The predictor's output at its working resolution ``h x w`` (the image's times
    ``scale_factor``). ``optical_flow`` ``(B, h, w, 2)``: for each driving-frame pixel, where to
    sample the source ((x, y) in [-1, 1]). ``occlusion_map`` ``(B, 1, h, w)`` in (0, 1), None when
    not estimated. ``mask`` ``(B, K + 1, h, w)``: the per-pixel weights of the background (index
    0) and the K region motions, summing to 1. ``sparse_motions`` ``(B, K + 1, h, w, 2)``: those
    motions. ``sparse_deformed`` ``(B, K + 1, C, h, w)``: the downscaled source warped by each."""

    optical_flow: Tensor
    mask: Tensor
    sparse_motions: Tensor
    sparse_deformed: Tensor
    occlusion_map: Optional[Tensor] = None


class PixelwiseFlowPredictor(nn.Module):
    """``(source, source regions, driving regions) -> PixelwiseFlow``.

    The hourglass sees, for the background and every region, the difference of the driving and
    source region heatmaps (Eq. 6 of the paper, zero for the background) and, with
    ``use_deformed_source``, the source warped by that motion. Parameter names are the original's
    (``hourglass``, ``mask``, ``occlusion``, ``down``). ``revert_axis_swap``: a region's
    transform ``A_S A_D^-1`` is multiplied by the sign of its top-left entry, undoing an axis flip
    between the SVDs of source and driving.
    """

    def __init__(self, params: PixelwiseFlowPredictorParams, num_regions: int, num_channels: int,
                 revert_axis_swap: bool) -> None:
        super().__init__()
        channels_per_motion = (num_channels if params.use_deformed_source else 0) + 1
        self.hourglass = Hourglass(params.block_expansion, in_features=(num_regions + 1) * channels_per_motion,
                                   num_blocks=params.num_blocks, max_features=params.max_features)
        self.mask = nn.Conv2d(self.hourglass.out_filters, num_regions + 1, kernel_size=7, padding=3)
        self.occlusion: Optional[nn.Conv2d] = None
        if params.estimate_occlusion_map:
            self.occlusion = nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=7, padding=3)
        self.scale_factor = params.scale_factor
        self.region_var = params.region_var
        self.use_covar_heatmap = params.use_covar_heatmap
        self.use_deformed_source = params.use_deformed_source
        self.revert_axis_swap = revert_axis_swap
        if self.scale_factor != 1:
            self.down = AntiAliasDownsample(num_channels, self.scale_factor)

    def downscale(self, source: Tensor) -> Tensor:
        """The source ``(B, C, H, W)`` at the predictor's working resolution (computed once per
        source when animating)."""
        return self.down(source) if self.scale_factor != 1 else source

    def forward(self, source: Tensor, source_regions: Regions, driving_regions: Regions) -> PixelwiseFlow:
        """``source`` ``(B, C, H, W)`` in [0, 1]; regions of batch B (``driving_regions.background``
        is the background motion, identity when None)."""
        return self.predict(self.downscale(source), source_regions, driving_regions)

    def predict(self, small_source: Tensor, source_regions: Regions, driving_regions: Regions) -> PixelwiseFlow:
        """As :meth:`forward`, from the source already downscaled (:meth:`downscale`), ``(B, C, h, w)``."""
        batch, _, height, width = small_source.shape
        # Heatmaps, motions and sampling in fp32 even under bf16/fp16 autocast, where rounded
        # coordinates would shift pixels (no-op without autocast).
        with full_precision(small_source):
            source_regions, driving_regions = source_regions.widened(), driving_regions.widened()
            heatmaps = self._heatmap_difference(source_regions, driving_regions, height, width)
            motions = sparse_motions(source_regions, driving_regions, height, width, self.revert_axis_swap)
            deformed = warp_by_each(at_least_fp32(small_source), motions, sample)  # (B, K+1, C, h, w)
        if self.use_deformed_source:
            features = torch.cat([heatmaps.unsqueeze(2), deformed], dim=2)
        else:
            features = heatmaps.unsqueeze(2)
        prediction = self.hourglass(features.view(batch, -1, height, width))
        mask_logits = self.mask(prediction)
        occlusion_logits = self.occlusion(prediction) if self.occlusion is not None else None

        with full_precision(mask_logits):
            mask = F.softmax(at_least_fp32(mask_logits), dim=1)
            # The dense motion: at each pixel, the mask-weighted mean of the K + 1 motions.
            optical_flow = torch.einsum("bkhw,bkhwc->bhwc", mask, motions)
            occlusion_map = None if occlusion_logits is None else torch.sigmoid(at_least_fp32(occlusion_logits))
        return PixelwiseFlow(optical_flow=optical_flow, mask=mask, sparse_motions=motions,
                             sparse_deformed=deformed, occlusion_map=occlusion_map)

    def _heatmap_difference(self, source: Regions, driving: Regions, height: int, width: int) -> Tensor:
        """``(B, K + 1, h, w)``: driving minus source region gaussians, a zero map first for the
        background (Eq. 6 of the paper, H_k(z))."""
        driving_covar = driving.covar if self.use_covar_heatmap else None
        source_covar = source.covar if self.use_covar_heatmap else None
        difference = (region_gaussians(driving.shift, driving_covar, height, width, self.region_var)
                      - region_gaussians(source.shift, source_covar, height, width, self.region_var))
        background = difference.new_zeros(difference.shape[0], 1, height, width)
        return torch.cat([background, difference], dim=1)



def region_gaussians(shift: Tensor, covar: Optional[Tensor], height: int, width: int,
                     variance: float) -> Tensor:
    """Gaussian bumps ``exp(-0.5 (z - mu)^T Sigma^-1 (z - mu))`` at the ``(B, K, 2)`` centres over
    an ``height x width`` grid, ``(B, K, h, w)``; ``Sigma`` is the ``(B, K, 2, 2)`` covariance, or
    ``variance * I`` when ``covar`` is None. Peak 1 at each centre."""
    if covar is None:
        return keypoints_to_gaussian(shift, height, width, variance)
    grid = coordinate_grid(height, width, dtype=shift.dtype, device=shift.device)
    centred = grid[None, None] - shift[:, :, None, None, :]
    precision = inverse_2x2(covar)
    return torch.exp(-0.5 * torch.einsum("bkhwi,bkij,bkhwj->bkhw", centred, precision, centred))


def sparse_motions(source: Regions, driving: Regions, height: int, width: int,
                   revert_axis_swap: bool) -> Tensor:
    """The K + 1 candidate motions ``(B, K + 1, h, w, 2)``, driving -> source coordinates.

    Index 0 is the background: the identity, or ``driving.background`` applied to homogeneous
    coordinates. Region k maps z to ``A_k (z - shift_D) + shift_S`` with ``A_k = A_S A_D^-1``
    (the identity when the regions have no affine frames).
    """
    batch = driving.shift.shape[0]
    identity = coordinate_grid(height, width, dtype=driving.shift.dtype, device=driving.shift.device)
    centred = identity[None, None] - driving.shift[:, :, None, None, :]
    if driving.affine is not None:
        transform = torch.matmul(source.affine, inverse_2x2(driving.affine))
        if revert_axis_swap:
            transform = transform * torch.sign(transform[..., 0:1, 0:1])
        centred = torch.einsum("bkij,bkhwj->bkhwi", transform, centred)
    to_source = centred + source.shift[:, :, None, None, :]

    background = identity.expand(batch, 1, height, width, 2)
    if driving.background is not None:
        homogeneous = torch.cat([background, torch.ones_like(background[..., :1])], dim=-1)
        moved = torch.einsum("bij,bkhwj->bkhwi", driving.background, homogeneous)
        background = moved[..., :2] / moved[..., 2:3]
    return torch.cat([background, to_source], dim=1)
