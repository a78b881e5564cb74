"""FOMM's motion description, keypoints with local affine jacobians, and the relative transfer on
them.

Convention (the same as ``F.grid_sample``): ``value`` is ``(B, K, 2)``, x then y, in [-1, 1],
with -1 and 1 at the centres of the corner pixels. ``jacobian`` is ``(B, K, 2, 2)``, the local
affine map d(position)/d(coordinate) around each keypoint, or None when the config does not
estimate it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from ...bundle import TensorBundle
from ...geometry import inverse_2x2
from ...pose import hull_scale

__all__ = ["Keypoints", "movement_scale", "relative_keypoints"]


@dataclass
class Keypoints(TensorBundle):
    """Keypoints of a batch of images: ``value`` ``(B, K, 2)`` and ``jacobian`` ``(B, K, 2, 2)``
    or None. Only what animation needs; the detector's heatmaps travel separately
    (:class:`~fomm.models.fomm.KeypointDetection`)."""

    value: Tensor
    jacobian: Optional[Tensor] = None

    @property
    def num_kp(self) -> int:
        return self.value.shape[-2]


def movement_scale(kp_source: Keypoints, kp_driving_initial: Keypoints) -> float:
    """sqrt(hull area of the source keypoints) / sqrt(hull area of the initial driving keypoints),
    from batch element 0 (see :func:`fomm.pose.hull_scale`)."""
    return hull_scale(kp_source.value, kp_driving_initial.value)


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
