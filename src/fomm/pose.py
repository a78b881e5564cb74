"""Poses as point sets, whatever the family: comparing them (the best reference frame for relative
motion) and their size (the scale of relative motion).

Points are ``(N, 2)`` or ``(B, N, 2)``, (x, y) in [-1, 1]: a FOMM model's keypoints, a TPS model's
control points, an MRAA model's region centres (see :meth:`fomm.models.MotionModel.points`).
"""

from __future__ import annotations

import math

from torch import Tensor

from .geometry import convex_hull_area

__all__ = ["best_matching_frame", "hull_scale", "normalised_pose"]


def hull_scale(source: Tensor, driving_initial: Tensor) -> float:
    """sqrt(hull area of ``source``) / sqrt(hull area of ``driving_initial``): how much larger the
    source's pose is than the reference driving frame's.

    ``(B, N, 2)`` points; batch element 0 is used, as the original implementations do: in
    animation every element shares one source and one reference frame.
    """
    return math.sqrt(convex_hull_area(source[0])) / math.sqrt(convex_hull_area(driving_initial[0]))


def normalised_pose(points: Tensor) -> Tensor:
    """``(N, 2)`` points centred on their mean and scaled to unit hull area: a pose, free of where
    and how large the object is."""
    centred = points - points.mean(dim=0, keepdim=True)
    try:
        area = convex_hull_area(points)
    except Exception:  # degenerate (collinear) points have no hull: use the spread instead
        area = float(centred.pow(2).sum(-1).mean())
    return centred / max(area, 1e-12) ** 0.5


def best_matching_frame(source: Tensor, driving: Tensor) -> int:
    """Index of the driving frame whose pose (``driving`` ``(T, N, 2)``) is closest to the
    source's (``source`` ``(N, 2)``), position and scale aside: the best reference frame for
    relative motion (the original ``--find_best_frame``, without its face-alignment model)."""
    target = normalised_pose(source.float().cpu())
    distances = [float((normalised_pose(points) - target).pow(2).sum()) for points in driving.float().cpu()]
    return int(min(range(len(distances)), key=distances.__getitem__))
