"""Region predictor: heatmaps -> each region's centre, covariance and affine frame (the paper's
PCA-based motion estimation)."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...geometry import coordinate_grid
from ..blocks import AntiAliasDownsample, Hourglass, at_least_fp32, full_precision
from .config import MraaModelParams
from .regions import RegionDetection, Regions

__all__ = ["RegionPredictor", "covariance_square_root"]


class RegionPredictor(nn.Module):
    """Hourglass on an anti-aliased downscaled image, then a 7x7 conv to K region heatmaps.

    ``(B, C, H, W)`` images in [0, 1] -> :class:`Regions`. A region's heatmap is a softmax over
    its map (with ``temperature``); its ``shift`` is the heatmap's mean coordinate and, with
    ``pca_based``, ``covar`` its covariance and ``affine`` the covariance's square root
    ``U diag(sqrt(s))`` from its SVD. Without ``pca_based`` but with ``estimate_affine`` the affine
    frame is instead the heatmap-weighted mean of a regressed 4-channel map (``jacobian``, shared
    by all regions, initialised to the identity) and ``covar = A A^T``. Parameter names are the
    original's (``predictor``, ``regions``, ``jacobian``, ``down``).
    """

    def __init__(self, params: MraaModelParams) -> None:
        super().__init__()
        settings = params.region_predictor_params
        self.temperature = settings.temperature
        self.scale_factor = settings.scale_factor
        self.pca_based = settings.pca_based
        self.predictor = Hourglass(settings.block_expansion, in_features=params.num_channels,
                                   num_blocks=settings.num_blocks, max_features=settings.max_features)
        self.regions = nn.Conv2d(self.predictor.out_filters, params.num_regions, kernel_size=7, padding=settings.pad)
        self.jacobian: Optional[nn.Conv2d] = None
        if params.estimate_affine and not settings.pca_based:
            self.jacobian = nn.Conv2d(self.predictor.out_filters, 4, kernel_size=7, padding=settings.pad)
            # Every affine frame starts as the identity, as in the original.
            nn.init.zeros_(self.jacobian.weight)
            with torch.no_grad():
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]))
        if self.scale_factor != 1:
            self.down = AntiAliasDownsample(params.num_channels, self.scale_factor)

    def forward(self, image: Tensor) -> Regions:
        """``(B, C, H, W)`` images in [0, 1] -> regions (``shift`` ``(B, K, 2)``, ...)."""
        return self.detect(image).regions

    def detect(self, image: Tensor, frames: bool = True) -> RegionDetection:
        """As :meth:`forward`, keeping the heatmaps and the SVD factors. Without ``frames`` the
        PCA-based affine frames are left out (None): the SVD is no ONNX operation, and an exported
        graph returns centres and covariances only."""
        if self.scale_factor != 1:
            image = self.down(image)
        feature_map = self.predictor(image)
        logits = self.regions(feature_map)
        jacobian_map = self.jacobian(feature_map) if self.jacobian is not None else None
        # Under reduced-precision autocast the convolutions run in bf16/fp16; the regions are
        # statistics of the heatmaps and are computed in fp32 (no-op without autocast).
        with full_precision(logits):
            logits = at_least_fp32(logits)
            batch, num_regions, height, width = logits.shape
            heatmap = F.softmax(logits.reshape(batch, num_regions, -1) / self.temperature, dim=2).view(logits.shape)
            if jacobian_map is not None:
                return self._regressed_regions(heatmap, at_least_fp32(jacobian_map))
            return self._moment_regions(heatmap, frames)

    def _moment_regions(self, heatmap: Tensor, frames: bool = True) -> RegionDetection:
        """Regions from the heatmaps' first moments, and with ``pca_based`` their second."""
        grid = coordinate_grid(heatmap.shape[2], heatmap.shape[3], dtype=heatmap.dtype, device=heatmap.device)
        weights = heatmap.unsqueeze(-1)
        # Products then sums over the pixels (not einsum): the original's order of rounding.
        shift = (weights * grid).sum(dim=(2, 3))
        if not self.pca_based:
            return RegionDetection(Regions(shift=shift), heatmap=heatmap)
        # Covariance: sum over pixels of heatmap * (z - mean)(z - mean)^T.
        centred = grid - shift[:, :, None, None, :]
        outer = centred.unsqueeze(-1) * centred.unsqueeze(-2)
        covar = (outer * weights.unsqueeze(-1)).sum(dim=(2, 3))
        if not frames:
            return RegionDetection(Regions(shift=shift, covar=covar), heatmap=heatmap)
        affine, u, d = covariance_square_root(covar)
        return RegionDetection(Regions(shift=shift, covar=covar, affine=affine), heatmap=heatmap, u=u, d=d)

    @staticmethod
    def _regressed_regions(heatmap: Tensor, jacobian_map: Tensor) -> RegionDetection:
        """Regions whose affine frame is the heatmap-weighted mean of the regressed map."""
        grid = coordinate_grid(heatmap.shape[2], heatmap.shape[3], dtype=heatmap.dtype, device=heatmap.device)
        shift = (heatmap.unsqueeze(-1) * grid).sum(dim=(2, 3))
        batch, num_regions = heatmap.shape[:2]
        weighted = heatmap.unsqueeze(2) * jacobian_map.unsqueeze(1)
        affine = weighted.flatten(3).sum(dim=-1).view(batch, num_regions, 2, 2)
        covar = torch.matmul(affine, affine.transpose(-1, -2))
        return RegionDetection(Regions(shift=shift, covar=covar, affine=affine), heatmap=heatmap)


def covariance_square_root(covar: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(affine, u, d)`` of ``(..., 2, 2)`` covariances: ``covar = U S V^T`` by SVD,
    ``d = diag(sqrt(S))``, ``affine = U d`` (so ``affine affine^T = covar``).

    The SVD runs on the CPU, as in the original: the published checkpoints were trained with its
    (LAPACK's) choice of each axis's sign and order, which the renderer's ``revert_axis_swap``
    only partly undoes; other solvers may choose differently.
    """
    u, singular, _ = torch.linalg.svd(covar.cpu(), full_matrices=False)
    u = u.to(covar.device)
    d = torch.diag_embed(singular.to(covar.device).sqrt())
    return torch.matmul(u, d), u, d
