"""Dense optical flow between two frames, computed in the data workers for the flow-consistency
loss (:func:`fomm.models.losses.flow_consistency_loss`).

Flow is in normalised coordinates: x then y, in units of the [-1, 1] image frame, so
``F = pixels / pixel_scale`` (see :func:`fomm.geometry.pixel_scale`).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..geometry import pixel_scale

__all__ = ["dense_flow"]


def dense_flow(frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
    """Forward optical flow from ``frame_a`` to ``frame_b`` (``(H, W, 3)``, uint8 or float in [0, 1]).

    Returns ``(2, H, W)`` float32 in normalised units (x, y): pixel ``z`` of ``a`` is at ``z + F``
    in ``b``. Uses DIS (dense inverse search), which is fast on the CPU and robust at small sizes.
    """
    gray_a, gray_b = (_gray_uint8(frame) for frame in (frame_a, frame_b))
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    pixels = dis.calc(gray_a, gray_b, None)  # (H, W, 2): dx, dy in pixels
    height, width = gray_a.shape
    scale = np.array(pixel_scale(width, height), dtype=np.float32)
    return np.ascontiguousarray((pixels / scale).transpose(2, 0, 1))


def _gray_uint8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8:
        frame = (np.clip(frame, 0, 1) * 255).round().astype(np.uint8)
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
