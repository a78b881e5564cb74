"""Thin-plate-spline transforms (section 3.1, Eqs. 1-2 of Zhao & Zhang, "Thin-Plate Spline Motion
Model for Image Animation", CVPR 2022).

A TPS transform maps a point p to

    T(p) = A [p; 1] + sum_i w_i U(|p - c_i|),   U(r) = r^2 log r^2          (Eq. 2)

with ``A`` a 2x3 affine matrix, control points ``c_i`` and weights ``w_i`` (2-vectors). TPSMM fits
K such transforms, each from 5 keypoint pairs: the driving frame's points are the control points
and the transform maps each of them onto the matching source point (Eq. 1), so ``T`` maps driving
coordinates to source coordinates, the backward warp that ``F.grid_sample`` needs.

Two details of the original code are kept because published checkpoints were trained with them:
the kernel is ``r^2 log(r^2 + 1e-9)`` (the log of the *squared* distance, so it is 2 r^2 log r,
and 0 at r = 0), and the linear system is regularised by adding ``0.01 I`` to the whole
``(N+3) x (N+3)`` matrix (the zero block too).

Coordinates are (x, y) in [-1, 1] (:mod:`fomm.geometry`); shapes name ``B`` the batch, ``K`` the
number of transforms, ``N`` the control points of one transform and ``P`` the points warped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from ...geometry import coordinate_grid, warp

__all__ = ["RandomTps", "TpsTransform", "fit_tps", "tps_kernel"]

#: Added to the whole system matrix before solving (the original's regularisation).
_REGULARISATION = 0.01
#: Keeps log() finite where a point sits on a control point.
_LOG_EPSILON = 1e-9


def tps_kernel(squared_distance: Tensor) -> Tensor:
    """The radial basis U as a function of the squared distance: ``r2 * log(r2 + 1e-9)``."""
    return squared_distance * torch.log(squared_distance + _LOG_EPSILON)


def _squared_distances(points: Tensor, control_points: Tensor) -> Tensor:
    """``(..., P, 2)`` and ``(..., N, 2)`` -> ``(..., P, N)`` squared euclidean distances."""
    difference = points[..., :, None, :] - control_points[..., None, :, :]
    return difference.pow(2).sum(-1)


@dataclass
class TpsTransform:
    """K thin-plate-spline transforms per batch element.

    ``affine`` ``(B, K, 2, 3)``, ``control_points`` ``(B, K, N, 2)``, ``weights`` ``(B, K, N, 2)``.
    """

    affine: Tensor
    control_points: Tensor
    weights: Tensor

    def warp_points(self, points: Tensor) -> Tensor:
        """Map points through every transform: ``(B or 1, P, 2)`` -> ``(B, K, P, 2)``."""
        points = points[:, None]  # one set of points for all K transforms
        # A [p; 1] computed as (A p^T)^T: the original's order of operations, and its rounding.
        linear = (self.affine[..., :2] @ points.transpose(-1, -2) + self.affine[..., 2:]).transpose(-1, -2)
        radial = tps_kernel(_squared_distances(points, self.control_points)) @ self.weights
        return linear + radial

    def grid(self, height: int, width: int) -> Tensor:
        """The transforms applied to every pixel centre: ``(B, K, H, W, 2)`` sampling grids."""
        pixels = coordinate_grid(height, width, dtype=self.affine.dtype, device=self.affine.device)
        warped = self.warp_points(pixels.view(1, height * width, 2))
        return warped.view(*warped.shape[:2], height, width, 2)


def fit_tps(driving_points: Tensor, source_points: Tensor) -> TpsTransform:
    """The K TPS transforms taking each group of driving points onto the source points (Eq. 1).

    ``driving_points``, ``source_points``: ``(B, K, N, 2)`` (TPSMM: N = 5). Solves, per transform,
    ``(L + 0.01 I) [w; a] = [source; 0]`` with ``L = [[U(|c_i - c_j|), [c_i, 1]], [[c_j, 1]^T, 0]]``.
    """
    batch, groups, count, _ = driving_points.shape
    # The squared norm rather than the sum of squares: the original's rounding, to which the
    # regularised solve is sensitive at the 1e-7 level.
    pairwise = driving_points[..., :, None, :] - driving_points[..., None, :, :]
    kernel = tps_kernel(torch.linalg.vector_norm(pairwise, dim=-1) ** 2)
    homogeneous = torch.cat([driving_points, driving_points.new_ones(batch, groups, count, 1)], dim=-1)
    system = torch.cat([
        torch.cat([kernel, homogeneous], dim=-1),
        torch.cat([homogeneous.transpose(-1, -2), driving_points.new_zeros(batch, groups, 3, 3)], dim=-1),
    ], dim=-2)
    system = system + _REGULARISATION * torch.eye(count + 3, dtype=system.dtype, device=system.device)
    targets = torch.cat([source_points, source_points.new_zeros(batch, groups, 3, 2)], dim=-2)
    # The explicit inverse, as the original: a solver rounds differently, and these 8x8 systems are
    # well enough conditioned that either is accurate.
    parameters = torch.linalg.inv(system) @ targets
    return TpsTransform(affine=parameters[..., count:, :].transpose(-1, -2),
                        control_points=driving_points,
                        weights=parameters[..., :count, :])


class RandomTps:
    """The random warp of TPSMM's equivariance loss (the original ``TPS(mode='random')``).

    ``theta`` ``(B, 2, 3)``: the identity plus N(0, sigma_affine) noise. A ``points_tps x points_tps``
    grid of control points with scalar weights N(0, sigma_tps) ``(B, 1, points_tps**2)`` adds the
    same displacement to x and y. Unlike FOMM's :class:`fomm.geometry.RandomWarp` (an L1 distance
    and ``log(r + 1e-6)``), the kernel is :func:`tps_kernel` of the squared euclidean distance.
    """

    def __init__(self, batch_size: int, sigma_affine: float, sigma_tps: float, points_tps: int, *,
                 device: Optional[torch.device] = None, generator: Optional[torch.Generator] = None) -> None:
        noise = torch.randn(batch_size, 2, 3, generator=generator) * sigma_affine
        self.batch_size = batch_size
        self.theta = (noise + torch.eye(2, 3).view(1, 2, 3)).to(device)
        self.control_points = coordinate_grid(points_tps, points_tps, device=device).view(1, -1, 2)
        weights = torch.randn(batch_size, 1, points_tps ** 2, generator=generator) * sigma_tps
        self.control_params = weights.to(device)

    def warp_coordinates(self, coordinates: Tensor) -> Tensor:
        """Map ``(B or 1, P, 2)`` coordinates through the warp; returns ``(B, P, 2)``."""
        theta = self.theta.to(coordinates.dtype)[:, None]
        # One 2x2 product per point, as the original: its rounding, bit for bit.
        linear = (theta[..., :2] @ coordinates[..., None]).squeeze(-1) + theta[..., 2]
        radial = tps_kernel(_squared_distances(coordinates, self.control_points.to(coordinates.dtype)))
        displacement = (radial * self.control_params.to(coordinates.dtype)).sum(dim=-1, keepdim=True)
        return linear + displacement

    def transform_frame(self, frame: Tensor) -> Tensor:
        """Resample ``(B, C, H, W)`` frames at the warped pixel grid (reflection padding)."""
        _, _, height, width = frame.shape
        pixels = coordinate_grid(height, width, dtype=frame.dtype, device=frame.device).view(1, -1, 2)
        grid = self.warp_coordinates(pixels).view(self.batch_size, height, width, 2)
        return warp(frame, grid, padding_mode="reflection")
