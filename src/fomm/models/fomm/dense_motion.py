"""Dense motion: K+1 sparse motions → softmax masks → dense deformation and occlusion map."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import DenseMotionParams
from ...geometry import coordinate_grid, inverse_2x2, keypoints_to_gaussian, warp_by_each
from .keypoints import Keypoints
from ..blocks import AntiAliasDownsample, Hourglass, at_least_fp32, full_precision


@dataclass
class Motion:
    """Output of :class:`DenseMotion`, at the dense-motion resolution ``h x w``.

    ``deformation`` ``(B, h, w, 2)``: for each driving pixel, where to sample the source ((x, y) in
    [-1, 1]). ``mask`` ``(B, K+1, h, w)``: softmax weights of the sparse motions, channel 0 is the
    background (identity). ``sparse_deformed`` ``(B, K+1, C, h, w)``: the downscaled source warped by
    each sparse motion. ``occlusion_map`` ``(B, 1, h, w)`` in (0, 1) or None.
    """

    deformation: Tensor
    mask: Tensor
    sparse_deformed: Tensor
    occlusion_map: Optional[Tensor] = None


def sparse_motions(height: int, width: int, kp_source: Keypoints, kp_driving: Keypoints) -> Tensor:
    """First-order approximations of the driving → source mapping near each keypoint.

    ``T_k(z) = p_S + J_S J_D^-1 (z - p_D)`` per keypoint k (the paper's Eq. 6,
    ``T_S<-D(z) ≈ T_S<-R(p_k) + J_k (z - T_D<-R(p_k))`` with ``J_k = J_S J_D^-1``), plus the
    identity for the background.
    Returns ``(B, K+1, h, w, 2)``. The jacobian product is applied once per keypoint rather than
    copied to every pixel.
    """
    value_source, value_driving = kp_source.value, kp_driving.value
    batch, num_kp, _ = value_driving.shape
    identity = coordinate_grid(height, width, dtype=value_source.dtype, device=value_source.device)
    offsets = identity.view(1, 1, height, width, 2) - value_driving.view(batch, num_kp, 1, 1, 2)
    if kp_driving.jacobian is not None and kp_source.jacobian is not None:
        jacobian = torch.matmul(kp_source.jacobian, inverse_2x2(kp_driving.jacobian))
        offsets = torch.einsum("bkij,bkhwj->bkhwi", jacobian, offsets)
    driving_to_source = offsets + value_source.view(batch, num_kp, 1, 1, 2)
    background = identity.view(1, 1, height, width, 2).expand(batch, 1, height, width, 2)
    return torch.cat([background, driving_to_source], dim=1)


class DenseMotion(nn.Module):
    """Predicts the dense deformation (and occlusion) from a source image and two keypoint sets.

    The hourglass sees, for each of the K+1 motions, the difference of gaussians around the driving
    and source keypoints (zeros for the background) and the source warped by that motion.
    """

    def __init__(self, params: DenseMotionParams, num_kp: int, num_channels: int,
                 estimate_occlusion_map: bool) -> None:
        super().__init__()
        self.num_kp = num_kp
        self.kp_variance = params.kp_variance
        self.scale_factor = params.scale_factor
        self.hourglass = Hourglass(params.block_expansion, in_features=(num_kp + 1) * (num_channels + 1),
                                   num_blocks=params.num_blocks, max_features=params.max_features)
        self.mask = nn.Conv2d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.occlusion: Optional[nn.Conv2d] = None
        if estimate_occlusion_map:
            self.occlusion = nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=7, padding=3)
        if self.scale_factor != 1:
            self.down = AntiAliasDownsample(num_channels, self.scale_factor)

    def heatmap_representation(self, height: int, width: int, kp_source: Keypoints,
                               kp_driving: Keypoints) -> Tensor:
        """Gaussian(driving) - gaussian(source), background channel zero: ``(B, K+1, 1, h, w)``
        (section 3.2: ``H_k(z) = exp(-(T_D<-R(p_k) - z)^2 / s) - exp(-(T_S<-R(p_k) - z)^2 / s)``)."""
        gaussian_driving = keypoints_to_gaussian(kp_driving.value, height, width, self.kp_variance)
        gaussian_source = keypoints_to_gaussian(kp_source.value, height, width, self.kp_variance)
        heatmap = gaussian_driving - gaussian_source
        return F.pad(heatmap, (0, 0, 0, 0, 1, 0)).unsqueeze(2)

    def forward(self, source: Tensor, kp_source: Keypoints, kp_driving: Keypoints) -> Motion:
        if self.scale_factor != 1:
            source = self.down(source)
        batch, _, height, width = source.shape
        with full_precision(source):
            heatmaps = self.heatmap_representation(height, width, kp_source, kp_driving)
            motions = sparse_motions(height, width, kp_source, kp_driving)
            sparse_deformed = warp_by_each(at_least_fp32(source), motions)  # (B, K+1, C, h, w)

        features = torch.cat([heatmaps, sparse_deformed], dim=2).view(batch, -1, height, width)
        prediction = self.hourglass(features)
        mask_logits = self.mask(prediction)
        occlusion_logits = self.occlusion(prediction) if self.occlusion is not None else None
        # The sampling grid is a mask-weighted sum of coordinates: fp32 even under bf16/fp16
        # autocast, where a rounded grid would shift pixels (no-op without autocast).
        with full_precision(mask_logits):
            mask = F.softmax(at_least_fp32(mask_logits), dim=1)
            # Section 3.2: T^(z) = M_0 z + sum_k M_k T_k(z), the sparse motions mixed by the masks.
            deformation = torch.einsum("bkhw,bkhwc->bhwc", mask, motions)
            occlusion_map = None if occlusion_logits is None else torch.sigmoid(at_least_fp32(occlusion_logits))
        return Motion(deformation=deformation, mask=mask, sparse_deformed=sparse_deformed,
                      occlusion_map=occlusion_map)
