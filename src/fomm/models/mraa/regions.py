"""Regions, the motion description of the MRAA family, and the relative motion transfer on them.

A region (the paper's region-based motion representation) is a heatmap over the image; its first moments give the
region's centre (``shift``), its second moments the covariance (``covar``), and the covariance's
square root by SVD (or a regressed map) the region's local affine frame (``affine``). Motion from
the source to a driving frame is, near region k, ``z -> A_S A_D^-1 (z - shift_D) + shift_S``.

Convention: ``shift`` is ``(B, K, 2)``, x then y, in [-1, 1] with -1 and 1 at the centres of the
corner pixels (:func:`fomm.geometry.coordinate_grid`); ``covar`` and ``affine`` are
``(B, K, 2, 2)`` in the same coordinates; ``background`` is a ``(B, 3, 3)`` homogeneous transform
of the whole frame, driving -> source coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from ...bundle import TensorBundle
from ...geometry import inverse_2x2
from ...pose import hull_scale
from ..blocks import at_least_fp32, full_precision

__all__ = ["RegionDetection", "Regions", "movement_scale", "relative_regions"]


@dataclass
class Regions(TensorBundle):
    """The regions of a batch of images (see the module docstring for shapes and coordinates).

    ``covar`` and ``affine`` are None for a config that estimates neither (centres only).
    ``background`` is the background motion the renderer applies, None for none: only
    :meth:`fomm.models.mraa.MraaModel.reconstruct` sets it, from the background predictor, as the
    original used it in training and reconstruction but not in animation.
    """

    shift: Tensor
    covar: Optional[Tensor] = None
    affine: Optional[Tensor] = None
    background: Optional[Tensor] = None

    @property
    def num_regions(self) -> int:
        return self.shift.shape[1]

    def widened(self) -> "Regions":
        """bf16/fp16 tensors (networks under autocast) in fp32; fp32 and fp64 unchanged."""
        return self._map(at_least_fp32)


@dataclass
class RegionDetection:
    """Everything the region predictor computes for a batch: the :class:`Regions` animation uses,
    the ``heatmap`` ``(B, K, h, w)`` (a softmax over each map), and for PCA-based regions the SVD of
    each covariance, ``u`` (its axes, columns) and ``d`` (the square roots of its singular values
    on the diagonal), both ``(B, K, 2, 2)``, with ``affine = u @ d``."""

    regions: Regions
    heatmap: Tensor
    u: Optional[Tensor] = None
    d: Optional[Tensor] = None


def movement_scale(source: Regions, driving_initial: Regions) -> float:
    """sqrt(hull area of the source's region centres) / sqrt(that of the initial driving frame's).

    From batch element 0, as the original did: in animation every element shares one source and
    one initial driving frame.
    """
    return hull_scale(source.shift, driving_initial.shift)


def relative_regions(source: Regions, driving: Regions, driving_initial: Regions,
                     adapt_movement_scale: bool = True) -> Regions:
    """Driving regions re-expressed relative to the source (the original
    ``get_animation_region_params`` in its ``relative`` mode).

    With D1 the initial and Dt the current driving frame and S the source: centres
    ``shift_S + s (shift_Dt - shift_D1)`` and affine frames ``A_Dt A_D1^-1 A_S``. ``s`` is the
    :func:`movement_scale` with ``adapt_movement_scale`` (the original always applied it; its
    ``adapt_movement_scale`` argument was never read), else 1. The covariance is the driving
    frame's, unchanged, as in the original: the renderer draws the driving heatmaps with it.
    The background does not move. ``driving`` has batch B; ``source`` and ``driving_initial``
    batch 1 or B.
    """
    scale = movement_scale(source, driving_initial) if adapt_movement_scale else 1.0
    # The 2x2 algebra in fp32 even under autocast (no-op without it).
    with full_precision(driving.shift):
        source, driving, driving_initial = source.widened(), driving.widened(), driving_initial.widened()
        shift = (driving.shift - driving_initial.shift) * scale + source.shift
        affine = driving.affine
        if affine is not None:
            if driving_initial.affine is None or source.affine is None:
                raise ValueError("relative affine frames need affine frames on all three region sets")
            change = torch.matmul(driving.affine, inverse_2x2(driving_initial.affine))
            affine = torch.matmul(change, source.affine)
    return Regions(shift=shift, covar=driving.covar, affine=affine)
