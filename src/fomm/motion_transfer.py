"""Transferring driving motion to a source: relative keypoints (the original ``normalize_kp``)."""

from __future__ import annotations

import math

import torch

from .geometry import convex_hull_area, inverse_2x2
from .models.keypoints import Keypoints


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
    """Driving keypoints re-expressed relative to the source (appendix A.3 of the paper).

    With relative movement the result is ``p_S + s * (p_D - p_D1)`` where ``p_D1`` are the initial
    driving keypoints and ``s`` the :func:`movement_scale` (1 unless ``adapt_movement_scale``);
    with relative jacobians, ``J_D J_D1^-1 J_S``. Otherwise the driving keypoints are returned as
    they are (absolute motion). Shapes: values ``(B, K, 2)``, jacobians ``(B, K, 2, 2)``.
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
