"""Coordinate grids, keypoint gaussians, jacobian algebra and random warps.

Convention everywhere: normalised coordinates in [-1, 1] with -1 and 1 at the *centres* of the
corner pixels, x (along the width) first, then y. This is the ``align_corners=True`` convention of
``F.grid_sample``, the one the published checkpoints were trained with, so every resampling in the
package goes through :func:`warp` with ``align_corners=True`` spelled out.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

# The published checkpoints were trained on torch 1.0, which sampled with align_corners=True.
ALIGN_CORNERS = True


def coordinate_grid(height: int, width: int, *, dtype: torch.dtype = torch.float32,
                    device: Optional[torch.device] = None) -> Tensor:
    """Pixel-centre coordinates of a ``height x width`` image.

    Returns ``(H, W, 2)``: ``[..., 0]`` is x in [-1, 1] along the width, ``[..., 1]`` is y.
    """
    x = torch.arange(width, dtype=dtype, device=device)
    y = torch.arange(height, dtype=dtype, device=device)
    # max(.., 1) keeps a single row or column at -1 instead of dividing by zero.
    x = 2 * (x / max(width - 1, 1)) - 1
    y = 2 * (y / max(height - 1, 1)) - 1
    yy = y.view(-1, 1).expand(height, width)
    xx = x.view(1, -1).expand(height, width)
    return torch.stack([xx, yy], dim=-1)


def pixel_scale(width: int, height: int) -> tuple[float, float]:
    """Pixels per normalised unit along x and y: ``((W - 1) / 2, (H - 1) / 2)``.

    The one place the [-1, 1] <-> pixel conversion is defined: a distance in normalised units
    times this is a distance in pixels.
    """
    return (max(width - 1, 1) / 2, max(height - 1, 1) / 2)


def to_pixels(points, width: int, height: int):
    """Normalised ``(..., 2)`` (x, y) in [-1, 1] -> pixel (column, row) with pixel centres at
    integers. Tensors stay tensors; anything else becomes a float64 array."""
    return (_as_points(points) + 1) * _scale_like(points, width, height)


def _as_points(points):
    import numpy as np

    return points if isinstance(points, Tensor) else np.asarray(points, dtype=np.float64)


def _scale_like(points, width: int, height: int):
    import numpy as np

    scale = pixel_scale(width, height)
    if isinstance(points, Tensor):
        return torch.tensor(scale, dtype=points.dtype, device=points.device)
    return np.asarray(scale, dtype=np.float64)


def keypoints_to_gaussian(value: Tensor, height: int, width: int, variance: float) -> Tensor:
    """Isotropic gaussian bumps around keypoints.

    ``value`` is ``(..., K, 2)`` in [-1, 1]; returns ``(..., K, H, W)`` with peak 1 at each keypoint.
    """
    grid = coordinate_grid(height, width, dtype=value.dtype, device=value.device)
    difference = grid - value[..., None, None, :]
    return torch.exp(-0.5 * difference.pow(2).sum(-1) / variance)


def warp(image: Tensor, grid: Tensor, padding_mode: str = "zeros") -> Tensor:
    """Backward warp: ``out[b, :, i, j] = image[b, :, at grid[b, i, j]]``.

    ``image`` is ``(B, C, H, W)``; ``grid`` is ``(B, H', W', 2)`` of (x, y) in [-1, 1].
    """
    return F.grid_sample(image, grid, mode="bilinear", padding_mode=padding_mode,
                         align_corners=ALIGN_CORNERS)


def warp_by_each(image: Tensor, grids: Tensor, sampler: Callable[[Tensor, Tensor], Tensor] = warp) -> Tensor:
    """``image`` ``(B, C, h, w)`` warped by each of ``grids`` ``(B, N, h, w, 2)``: ``(B, N, C, h, w)``
    (the source under each sparse motion of the dense-motion networks). ``sampler`` is the
    family's warp: :func:`warp`, or MRAA's ``align_corners=False`` sampling."""
    batch, count, height, width, _ = grids.shape
    channels = image.shape[1]
    repeated = image.unsqueeze(1).expand(batch, count, channels, height, width)
    deformed = sampler(repeated.reshape(batch * count, channels, height, width),
                       grids.reshape(batch * count, height, width, 2))
    return deformed.view(batch, count, channels, height, width)


def resize_grid(grid: Tensor, height: int, width: int) -> Tensor:
    """Bilinearly resize a sampling grid ``(B, H, W, 2)`` to ``(B, height, width, 2)``.

    Uses ``align_corners=False`` as the original generator did (the torch default since 0.4, also
    under torch 1.0), so that published checkpoints see the grids they were trained on.
    """
    if grid.shape[1:3] == (height, width):
        return grid
    resized = F.interpolate(grid.permute(0, 3, 1, 2), size=(height, width), mode="bilinear",
                            align_corners=False)
    return resized.permute(0, 2, 3, 1)


def resize_displacement(grid: Tensor, height: int, width: int) -> Tensor:
    """Resize a sampling grid ``(B, H, W, 2)`` to ``(B, height, width, 2)`` by its displacement.

    :func:`resize_grid` interpolates the absolute coordinates with ``align_corners=False``, which
    stretches them by about ``(W - 1) / (W - 2)`` when doubling: even the identity comes out a
    fraction of a pixel off (up to half a pixel at the borders), so a warp with no motion resamples,
    and blurs, the whole image. Here the displacement ``grid - identity`` is interpolated
    (``align_corners=True``, the grids' convention) and added to the identity of the new size:
    no motion stays exactly no motion at every resolution. Models choose it with
    ``generator_params.deformation_upsampling: displacement``; published checkpoints keep
    :func:`resize_grid`, which they were trained with.
    """
    if grid.shape[1:3] == (height, width):
        return grid
    identity = coordinate_grid(grid.shape[1], grid.shape[2], dtype=grid.dtype, device=grid.device)
    displacement = F.interpolate((grid - identity).permute(0, 3, 1, 2), size=(height, width), mode="bilinear",
                                 align_corners=True)
    return displacement.permute(0, 2, 3, 1) + coordinate_grid(height, width, dtype=grid.dtype, device=grid.device)


#: How a deformation is brought to a finer resolution, by ``generator_params.deformation_upsampling``:
#: the generator warps with it, and the flow metric must resample the same way.
DEFORMATION_RESIZERS = {"coordinates": resize_grid, "displacement": resize_displacement}


def resize_map(feature: Tensor, height: int, width: int) -> Tensor:
    """Bilinearly resize a ``(B, C, H, W)`` map, ``align_corners=False`` as the original did."""
    if feature.shape[2:] == (height, width):
        return feature
    return F.interpolate(feature, size=(height, width), mode="bilinear", align_corners=False)


def inverse_2x2(matrix: Tensor) -> Tensor:
    """Closed-form inverse of ``(..., 2, 2)`` matrices.

    Cheaper than ``torch.inverse`` for tiny matrices, exportable to ONNX (which has no batched
    inverse), and agrees with it to ~1e-7 on well-conditioned keypoint jacobians.
    """
    a, b = matrix[..., 0, 0], matrix[..., 0, 1]
    c, d = matrix[..., 1, 0], matrix[..., 1, 1]
    determinant = a * d - b * c
    inverse = torch.stack([torch.stack([d, -b], dim=-1), torch.stack([-c, a], dim=-1)], dim=-2)
    return inverse / determinant[..., None, None]


def convex_hull_area(points: Tensor) -> float:
    """Area of the convex hull of ``(N, 2)`` points (scipy's ``ConvexHull.volume`` in 2-D)."""
    from scipy.spatial import ConvexHull

    return float(ConvexHull(points.detach().cpu().double().numpy()).volume)


class RandomWarp:
    """Random affine + thin-plate-spline warp of the equivariance constraints.

    ``theta`` is ``(B, 2, 3)``: identity plus N(0, sigma_affine). With ``sigma_tps`` and
    ``points_tps`` a TPS term with ``points_tps x points_tps`` control points on a regular grid and
    N(0, sigma_tps) weights is added, using the same radial basis ``r^2 log r`` with an L1 distance
    as the original code. Coordinates are (x, y) in [-1, 1].
    """

    def __init__(self, batch_size: int, sigma_affine: float, sigma_tps: Optional[float] = None,
                 points_tps: Optional[int] = None, *, device: Optional[torch.device] = None,
                 generator: Optional[torch.Generator] = None) -> None:
        noise = torch.randn(batch_size, 2, 3, generator=generator) * sigma_affine
        self.theta = (noise + torch.eye(2, 3).view(1, 2, 3)).to(device)
        self.batch_size = batch_size
        self.control_points: Optional[Tensor] = None
        self.control_params: Optional[Tensor] = None
        if sigma_tps is not None and points_tps is not None:
            self.control_points = coordinate_grid(points_tps, points_tps, device=device).view(1, -1, 2)
            weights = torch.randn(batch_size, 1, points_tps ** 2, generator=generator) * sigma_tps
            self.control_params = weights.to(device)

    def warp_coordinates(self, coordinates: Tensor) -> Tensor:
        """Map ``(B, N, 2)`` coordinates through the warp; returns ``(B, N, 2)``."""
        theta = self.theta.to(coordinates.dtype)
        transformed = torch.einsum("bij,bnj->bni", theta[:, :, :2], coordinates) + theta[:, None, :, 2]
        if self.control_points is not None and self.control_params is not None:
            distances = (coordinates[:, :, None, :] - self.control_points[:, None, :, :].to(coordinates.dtype))
            distances = distances.abs().sum(-1)
            radial = distances.pow(2) * torch.log(distances + 1e-6)
            tps = (radial * self.control_params.to(coordinates.dtype)).sum(dim=2, keepdim=True)
            transformed = transformed + tps
        return transformed

    def jacobian(self, coordinates: Tensor) -> Tensor:
        """Jacobian of the warp at ``(B, N, 2)`` coordinates, ``(B, N, 2, 2)``, differentiable."""
        if not coordinates.requires_grad:
            coordinates = coordinates.detach().requires_grad_(True)
        warped = self.warp_coordinates(coordinates)
        grad_x = torch.autograd.grad(warped[..., 0].sum(), coordinates, create_graph=True)[0]
        grad_y = torch.autograd.grad(warped[..., 1].sum(), coordinates, create_graph=True)[0]
        return torch.stack([grad_x, grad_y], dim=-2)

    def transform_frame(self, frame: Tensor) -> Tensor:
        """Resample ``(B, C, H, W)`` frames at the warped pixel grid (reflection padding)."""
        _, _, height, width = frame.shape
        grid = coordinate_grid(height, width, dtype=frame.dtype, device=frame.device).view(1, -1, 2)
        grid = self.warp_coordinates(grid.expand(self.batch_size, -1, -1))
        return warp(frame, grid.view(self.batch_size, height, width, 2), padding_mode="reflection")
