"""Keypoints, the currency between the networks, and the relative motion transfer on them.

Convention (the same as ``F.grid_sample``): ``value`` is ``(B, K, 2)``, x then y, in [-1, 1],
with -1 and 1 at the centres of the corner pixels. ``jacobian`` is ``(B, K, 2, 2)``, the local
affine map d(position)/d(coordinate) around each keypoint, or None when the config does not
estimate it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from .geometry import convex_hull_area, inverse_2x2

__all__ = ["Keypoints", "best_matching_frame", "movement_scale", "normalised_pose", "relative_keypoints"]


@dataclass
class Keypoints:
    """Keypoints of a batch of images: ``value`` ``(B, K, 2)`` and ``jacobian`` ``(B, K, 2, 2)``
    or None. Only what animation needs; the detector's heatmaps travel separately
    (:class:`fomm.models.KeypointDetection`)."""

    value: Tensor
    jacobian: Optional[Tensor] = None

    def detach(self) -> "Keypoints":
        """A copy cut from the autograd graph."""
        return Keypoints(self.value.detach(), None if self.jacobian is None else self.jacobian.detach())

    def to(self, *args, **kwargs) -> "Keypoints":
        return Keypoints(self.value.to(*args, **kwargs),
                         None if self.jacobian is None else self.jacobian.to(*args, **kwargs))

    def float(self) -> "Keypoints":
        return self.to(torch.float32)

    def __getitem__(self, index) -> "Keypoints":
        """Select batch elements, e.g. ``kp[0:1]`` or ``kp[mask]``."""
        return Keypoints(self.value[index], None if self.jacobian is None else self.jacobian[index])

    def expand(self, batch: int) -> "Keypoints":
        """Broadcast keypoints of batch 1 to ``batch`` elements without copying."""
        if self.value.shape[0] == batch:
            return self
        return Keypoints(self.value.expand(batch, -1, -1),
                         None if self.jacobian is None else self.jacobian.expand(batch, -1, -1, -1))

    @staticmethod
    def cat(parts: list["Keypoints"]) -> "Keypoints":
        """Concatenate along the batch."""
        jacobians = [part.jacobian for part in parts]
        return Keypoints(torch.cat([part.value for part in parts]),
                         None if jacobians[0] is None else torch.cat(jacobians))

    @property
    def num_kp(self) -> int:
        return self.value.shape[-2]


def movement_scale(kp_source: Keypoints, kp_driving_initial: Keypoints) -> float:
    """sqrt(hull area of the source keypoints) / sqrt(hull area of the initial driving keypoints).

    Computed from batch element 0, as the original did: in animation every element shares one
    source and one initial driving frame.
    """
    source_area = convex_hull_area(kp_source.value[0])
    driving_area = convex_hull_area(kp_driving_initial.value[0])
    return math.sqrt(source_area) / math.sqrt(driving_area)


def relative_keypoints(kp_source: Keypoints, kp_driving: Keypoints, kp_driving_initial: Keypoints,
                       adapt_movement_scale: bool = False, use_relative_movement: bool = True,
                       use_relative_jacobian: bool = True) -> Keypoints:
    """Driving keypoints re-expressed relative to the source (the original ``normalize_kp``).

    Appendix A.3 of the paper, with S1 the source, D1 the initial and Dt the current driving frame:
    value ``T_St<-R(p_k) = T_S1<-R(p_k) + s (T_Dt<-R(p_k) - T_D1<-R(p_k))``, and jacobian
    ``J_Dt J_D1^-1 J_S1`` (the two equations before Eq. 13; Eqs. 13-14 then put them into the
    first-order approximation of Eq. 6).
    ``s`` is the :func:`movement_scale` (1 unless ``adapt_movement_scale``). Without relative
    movement the driving keypoints are returned as they are (absolute motion).
    Shapes: values ``(B, K, 2)``, jacobians ``(B, K, 2, 2)``.
    """
    if not use_relative_movement:
        return Keypoints(kp_driving.value, kp_driving.jacobian)
    scale = movement_scale(kp_source, kp_driving_initial) if adapt_movement_scale else 1.0
    value = (kp_driving.value - kp_driving_initial.value) * scale + kp_source.value
    jacobian = kp_driving.jacobian
    if use_relative_jacobian and jacobian is not None:
        if kp_driving_initial.jacobian is None or kp_source.jacobian is None:
            raise ValueError("relative jacobians need jacobians on all three keypoint sets")
        change = torch.matmul(kp_driving.jacobian, inverse_2x2(kp_driving_initial.jacobian))
        jacobian = torch.matmul(change, kp_source.jacobian)
    return Keypoints(value, jacobian)


def normalised_pose(points: Tensor) -> Tensor:
    """``(K, 2)`` keypoints centred on their mean and scaled to unit hull area: a pose, free of
    where and how large the object is."""
    centred = points - points.mean(dim=0, keepdim=True)
    try:
        area = convex_hull_area(points)
    except Exception:  # degenerate (collinear) keypoints have no hull: use the spread instead
        area = float(centred.pow(2).sum(-1).mean())
    return centred / max(area, 1e-12) ** 0.5


def best_matching_frame(kp_source: Tensor, kp_driving: Tensor) -> int:
    """Index of the driving frame whose pose (``kp_driving`` ``(T, K, 2)``) is closest to the
    source's (``kp_source`` ``(K, 2)``), position and scale aside: the best reference frame for
    relative motion (the original ``--find_best_frame``, without its face-alignment model)."""
    target = normalised_pose(kp_source.float().cpu())
    distances = [float((normalised_pose(kp) - target).pow(2).sum()) for kp in kp_driving.float().cpu()]
    return int(min(range(len(distances)), key=distances.__getitem__))
