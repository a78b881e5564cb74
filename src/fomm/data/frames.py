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

__all__ = ["Framing", "centre_box", "fit_frames", "resize", "to_float", "to_uint8"]


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


@dataclass(frozen=True)
class Framing:
    """How a frame becomes a model input ``(3, height, width)`` in [0, 1]: cut to ``box``
    (``(x0, y0, x1, y1)`` pixels of the decoded frame; parts outside the frame are black) when
    given, else to the largest centred region of the model's shape with ``centre_crop``, else the
    whole frame; then :func:`resize` and :func:`to_float`."""

    height: int
    width: int
    box: Optional[Sequence[float]] = None
    centre_crop: bool = False

    def cut(self, frame: np.ndarray) -> np.ndarray:
        """The region of ``(H, W, 3)`` ``frame`` that becomes the model input, before resizing."""
        if self.box is not None:
            return _cut_box(frame, self.box)
        if self.centre_crop:
            x0, y0, x1, y1 = centre_box(frame.shape[0], frame.shape[1], self.height / self.width)
            return frame[y0:y1, x0:x1]
        return frame

    def fit(self, frame: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` -> ``(height, width, 3)``, same type: cut and resized."""
        return resize(self.cut(frame), self.height, self.width)

    def __call__(self, frames: np.ndarray | Tensor) -> Tensor:
        """``(T, H, W, 3)`` or ``(H, W, 3)`` uint8 or float frames (or a ``(T, 3, H, W)`` tensor)
        -> ``(T, 3, height, width)`` float in [0, 1]."""
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
        return to_float(np.stack([self.fit(frame) for frame in array]))


def _cut_box(frame: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """The pixels of ``frame`` inside ``box``, padded with black where the box leaves the frame."""
    x0, y0, x1, y1 = (int(round(value)) for value in box)
    height, width = frame.shape[:2]
    inside = frame[max(0, y0):min(height, y1), max(0, x0):min(width, x1)]
    pad = ((max(0, -y0), max(0, y1 - height)), (max(0, -x0), max(0, x1 - width)), (0, 0))
    return np.pad(inside, pad) if any(any(side) for side in pad[:2]) else inside


def fit_frames(frames: np.ndarray | Tensor, height: int, width: int, crop: bool = False) -> Tensor:
    """Frames of any size -> the model input ``(T, 3, height, width)`` float in [0, 1].

    ``frames``: ``(T, H, W, 3)`` / ``(H, W, 3)`` uint8 or float arrays, or ``(T, 3, H, W)`` /
    ``(3, H, W)`` tensors in [0, 1]. With ``crop`` the largest centred region of the target aspect
    ratio is kept; otherwise the whole frame is resized (its aspect ratio not kept).
    """
    return Framing(height, width, centre_crop=crop)(frames)
