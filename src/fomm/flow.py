"""Optical-flow consistency: keypoints must move the way the image moves.

For two nearby frames ``a`` (source) and ``b`` (driving) of one video, a classical dense optical
flow (OpenCV's DIS, no learned weights) gives the forward motion ``F``: the content at ``z`` in
``a`` is at ``z + F(z)`` in ``b``. A keypoint of ``a`` carried by the flow lands at
``p_a + sum_z H_a(z) F(z)`` (the flow averaged under its heatmap ``H_a``), and its local affine
frame becomes ``(I + dF/dz) J_a``. The loss is the L1 distance of ``b``'s keypoints (and
jacobians) to these carried ones, averaged over the nearby pairs of a batch.

Flow is in normalised coordinates: x then y, in units of the [-1, 1] image frame, so
``F = 2 * pixels / (size - 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
import torch
from torch import Tensor

from .geometry import coordinate_grid, warp
from .models.keypoints import Keypoints


def dense_flow(frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
    """Forward optical flow from ``frame_a`` to ``frame_b`` (``(H, W, 3)``, uint8 or float in [0, 1]).

    Returns ``(2, H, W)`` float32 in normalised units (x, y): pixel ``z`` of ``a`` is at ``z + F``
    in ``b``. Uses DIS (dense inverse search), which is fast on the CPU and robust at small sizes.
    """
    gray_a, gray_b = (_gray_uint8(frame) for frame in (frame_a, frame_b))
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    pixels = dis.calc(gray_a, gray_b, None)  # (H, W, 2): dx, dy in pixels
    height, width = gray_a.shape
    scale = np.array([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], dtype=np.float32)
    return np.ascontiguousarray((pixels * scale).transpose(2, 0, 1))


def _gray_uint8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8:
        frame = (np.clip(frame, 0, 1) * 255).round().astype(np.uint8)
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame


def flow_gradient(flow: Tensor) -> Tensor:
    """Spatial derivative of a ``(B, 2, H, W)`` flow in normalised units: ``(B, 2, 2, H, W)`` with
    ``[:, i, j]`` = d flow_i / d coordinate_j (central differences, one-sided at the border)."""
    _, _, height, width = flow.shape
    step_x, step_y = 2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)
    d_dx = torch.gradient(flow, dim=3)[0] / step_x
    d_dy = torch.gradient(flow, dim=2)[0] / step_y
    return torch.stack([d_dx, d_dy], dim=2)


def _average_under_heatmap(field: Tensor, heatmap: Tensor) -> Tensor:
    """``field`` ``(B, C, H, W)`` sampled at the heatmap's pixel centres and averaged under each
    heatmap ``(B, K, h, w)``: ``(B, K, C)``."""
    batch, _, height, width = heatmap.shape
    grid = coordinate_grid(height, width, dtype=field.dtype, device=field.device)
    sampled = warp(field, grid.unsqueeze(0).expand(batch, -1, -1, -1), padding_mode="border")
    return torch.einsum("bkhw,bchw->bkc", heatmap, sampled)


@dataclass
class CarriedKeypoints:
    """Keypoints of frame ``a`` carried to frame ``b`` by the flow: ``value`` ``(B, K, 2)``,
    ``jacobian`` ``(B, K, 2, 2)`` or None."""

    value: Tensor
    jacobian: Optional[Tensor]


def carry_keypoints(kp_a: Keypoints, flow: Tensor) -> CarriedKeypoints:
    """Move ``kp_a`` (which must carry its heatmap) by a ``(B, 2, H, W)`` forward flow."""
    if kp_a.heatmap is None:
        raise ValueError("flow consistency needs the detector's heatmaps on the source keypoints")
    displacement = _average_under_heatmap(flow, kp_a.heatmap)
    value = kp_a.value + displacement
    jacobian = None
    if kp_a.jacobian is not None:
        batch, _, height, width = flow.shape
        gradient = flow_gradient(flow).reshape(batch, 4, height, width)
        local = _average_under_heatmap(gradient, kp_a.heatmap).reshape(*kp_a.value.shape[:2], 2, 2)
        identity = torch.eye(2, dtype=flow.dtype, device=flow.device)
        jacobian = (identity + local) @ kp_a.jacobian
    return CarriedKeypoints(value, jacobian)


def flow_consistency_loss(kp_a: Keypoints, kp_b: Keypoints, flow: Tensor, mask: Optional[Tensor] = None
                          ) -> Tensor:
    """L1 distance of ``kp_b`` to ``kp_a`` carried by ``flow`` (values, plus jacobians when present).

    ``mask`` ``(B,)`` bool selects the nearby pairs whose flow is meaningful; the loss is 0 (with
    a gradient path) when none is selected. The flow is a fixed target: no gradient flows into it.
    """
    if mask is not None:
        if not bool(mask.any()):
            return kp_b.value.sum() * 0.0
        kp_a, kp_b, flow = _select(kp_a, mask), _select(kp_b, mask), flow[mask]
    carried = carry_keypoints(kp_a, flow.detach())
    loss = (kp_b.value - carried.value).abs().mean()
    if carried.jacobian is not None and kp_b.jacobian is not None:
        loss = loss + (kp_b.jacobian - carried.jacobian).abs().mean()
    return loss


def _select(kp: Keypoints, mask: Tensor) -> Keypoints:
    return Keypoints(kp.value[mask], None if kp.jacobian is None else kp.jacobian[mask],
                     heatmap=None if kp.heatmap is None else kp.heatmap[mask])
