"""Frames as a model sees them: one resize, one pixel conversion and one way to fit a frame to the
model, shared by training, evaluation, animation, the web app and live mode, so that a model is
given in use the pixels it was trained and measured on.

* :func:`resize`: OpenCV's area filter when shrinking (the mean of the source pixels under each
  target pixel: anti-aliased), bilinear when enlarging. Datasets are resized with it when read.
* :func:`to_float` / :func:`to_uint8`: ``uint8`` ``(T, H, W, 3)`` arrays <-> float ``(T, 3, H, W)``
  tensors in [0, 1] (``x / 255`` one way, ``round(255 x)`` the other).
* :class:`Framing` / :func:`fit_frames`: cut a region (a subject's crop box, or the largest centred
  region of the model's aspect ratio), resize to the model's frame size, convert: the model input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

__all__ = ["Framing", "Region", "centre_box", "cut", "fit_frames", "resize", "to_float", "to_uint8"]


def resize(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(H, W, C)`` uint8 or float32 -> ``(height, width, C)`` of the same type: area filter when
    the frame shrinks, bilinear when it grows."""
    if frame.shape[:2] == (height, width):
        return frame
    shrinking = height * width < frame.shape[0] * frame.shape[1]
    resized = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return resized[:, :, None] if resized.ndim == 2 else resized


def to_float(frames: np.ndarray) -> Tensor:
    """``(T, H, W, 3)`` or ``(H, W, 3)`` uint8 (or float in [0, 1]) -> ``(T, 3, H, W)`` float32 in
    [0, 1]."""
    array = frames[None] if frames.ndim == 3 else frames
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"expected RGB frames of shape (T, H, W, 3), got {frames.shape}")
    tensor = torch.from_numpy(np.array(array, copy=True)).permute(0, 3, 1, 2)
    return tensor.float() / 255.0 if array.dtype == np.uint8 else tensor.float().clamp(0, 1)


def to_uint8(frames: Tensor) -> np.ndarray:
    """``(T, 3, H, W)`` float in [0, 1] -> ``(T, H, W, 3)`` uint8 (values rounded, clipped)."""
    return (frames.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)


def centre_box(height: int, width: int, aspect: float) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of the largest centred region of a ``height x width`` frame whose
    height / width is ``aspect``."""
    if height / width > aspect:
        new_height = round(width * aspect)
        top = (height - new_height) // 2
        return (0, top, width, top + new_height)
    new_width = round(height / aspect)
    left = (width - new_width) // 2
    return (left, 0, left + new_width, height)


#: A region of a frame in pixels: ``(x0, y0, x1, y1)``, ``(x0, y0)`` its top-left corner and
#: ``(x1, y1)`` its bottom-right one (exclusive); its size is whole pixels, its position may not be.
Region = Sequence[float]


def cut(frame: np.ndarray, region: Region) -> np.ndarray:
    """The ``region`` of an ``(H, W, C)`` frame, at the frame's resolution. A region at a fractional
    position is sampled between pixels (bilinear; a crop that follows a subject glides by
    fractions of a pixel); parts outside the frame repeat its edge (bilinear) or are black."""
    x0, y0, x1, y1 = (float(value) for value in region)
    width, height = int(round(x1 - x0)), int(round(y1 - y0))
    if x0.is_integer() and y0.is_integer():
        left, top = int(x0), int(y0)
        inside = frame[max(0, top):max(0, top + height), max(0, left):max(0, left + width)]
        pad = ((max(0, -top), height - inside.shape[0] - max(0, -top)),
               (max(0, -left), width - inside.shape[1] - max(0, -left)), (0, 0))
        return np.ascontiguousarray(np.pad(inside, pad) if any(any(side) for side in pad[:2]) else inside)
    # getRectSubPix centres are in pixel-centre coordinates: pixel i is at i, not i + 0.5
    centre = (x0 + (width - 1) / 2, y0 + (height - 1) / 2)
    return cv2.getRectSubPix(np.ascontiguousarray(frame), (width, height), centre)


@dataclass(frozen=True)
class Framing:
    """How a frame becomes a model input ``(3, height, width)`` in [0, 1]: cut to ``box``
    (a :data:`Region` of the decoded frame), or to ``boxes[t]`` on frame ``t`` (a crop that
    follows its subject), when given; else to the largest centred region of the model's shape with
    ``centre_crop``; else the whole frame. Then :func:`resize` and :func:`to_float`."""

    height: int
    width: int
    box: Optional[Region] = None
    centre_crop: bool = False
    boxes: Optional[tuple[Region, ...]] = None

    def cut(self, frame: np.ndarray, index: int = 0) -> np.ndarray:
        """The region of ``(H, W, 3)`` frame number ``index`` that becomes the model input."""
        if self.boxes is not None:
            return cut(frame, self.boxes[min(index, len(self.boxes) - 1)])
        if self.box is not None:
            return cut(frame, self.box)
        if self.centre_crop:
            return cut(frame, centre_box(frame.shape[0], frame.shape[1], self.height / self.width))
        return frame

    def fit(self, frame: np.ndarray, index: int = 0) -> np.ndarray:
        """``(H, W, 3)`` -> ``(height, width, 3)``, same type: cut and resized."""
        return resize(self.cut(frame, index), self.height, self.width)

    def __call__(self, frames: np.ndarray | Tensor, start: int = 0) -> Tensor:
        """``(T, H, W, 3)`` or ``(H, W, 3)`` uint8 or float frames (or a ``(T, 3, H, W)`` tensor),
        the first of them frame number ``start`` -> ``(T, 3, height, width)`` float in [0, 1]."""
        if isinstance(frames, Tensor):
            frames = frames[None] if frames.dim() == 3 else frames
            if frames.dim() != 4 or frames.shape[1] != 3:
                raise ValueError(f"expected RGB frames of shape (T, 3, H, W), got {tuple(frames.shape)}")
            frames = frames.detach().float().permute(0, 2, 3, 1).cpu().numpy()
        array = frames[None] if frames.ndim == 3 else frames
        if array.ndim != 4 or array.shape[-1] != 3:
            raise ValueError(f"expected RGB frames of shape (T, H, W, 3), got {frames.shape}")
        if array.dtype != np.uint8:
            array = array.astype(np.float32)
        return to_float(np.stack([self.fit(frame, start + offset) for offset, frame in enumerate(array)]))


def fit_frames(frames: np.ndarray | Tensor, height: int, width: int, crop: bool = False) -> Tensor:
    """Frames of any size -> the model input ``(T, 3, height, width)`` float in [0, 1].

    ``frames``: ``(T, H, W, 3)`` / ``(H, W, 3)`` uint8 or float arrays, or ``(T, 3, H, W)`` /
    ``(3, H, W)`` tensors in [0, 1]. With ``crop`` the largest centred region of the target aspect
    ratio is kept; otherwise the whole frame is resized (its aspect ratio not kept).
    """
    return Framing(height, width, centre_crop=crop)(frames)
