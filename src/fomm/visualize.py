"""Pictures for humans: keypoints drawn on frames, and the training visualisation grid.

Images here are numpy ``(H, W, 3)`` float arrays in [0, 1] (or torch ``(3, H, W)`` tensors, which
are converted); keypoints are ``(K, 2)`` (x, y) in [-1, 1] with -1/1 at the corner pixel centres.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

__all__ = ["to_numpy_image", "draw_keypoints", "training_grid", "keypoint_colors"]


def to_numpy_image(image: Tensor | np.ndarray) -> np.ndarray:
    """``(3, H, W)`` / ``(1, H, W)`` tensor or ``(H, W[, C])`` array -> ``(H, W, 3)`` float in [0, 1]."""
    if isinstance(image, Tensor):
        array = image.detach().float().cpu().numpy()
        if array.ndim == 3:
            array = array.transpose(1, 2, 0)
    else:
        array = np.asarray(image, dtype=np.float32)
        if array.dtype == np.uint8 or array.max(initial=0) > 1.5:
            array = array / 255.0
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.clip(array.astype(np.float32), 0.0, 1.0)


def keypoint_colors(num_kp: int, colormap: str = "gist_rainbow") -> np.ndarray:
    """``(K, 3)`` RGB colours in [0, 1] spread over a matplotlib colormap."""
    from matplotlib import colormaps

    cmap = colormaps[colormap]
    return np.array([cmap(i / max(num_kp, 1))[:3] for i in range(num_kp)], dtype=np.float32)


def draw_keypoints(image: Tensor | np.ndarray, kp: Tensor | np.ndarray, colormap: str = "gist_rainbow",
                   kp_size: int = 5) -> np.ndarray:
    """``image`` with a filled disc of radius ``kp_size`` pixels at each keypoint, coloured by
    index along ``colormap``. Returns a new ``(H, W, 3)`` float array."""
    canvas = to_numpy_image(image).copy()
    points = kp.detach().float().cpu().numpy() if isinstance(kp, Tensor) else np.asarray(kp, dtype=np.float32)
    height, width = canvas.shape[:2]
    rows, cols = np.mgrid[0:height, 0:width]
    for point, color in zip(points, keypoint_colors(len(points), colormap)):
        col = (point[0] + 1) / 2 * (width - 1)
        row = (point[1] + 1) / 2 * (height - 1)
        canvas[(rows - row) ** 2 + (cols - col) ** 2 <= kp_size ** 2] = color
    return canvas


def training_grid(source: Tensor, driving: Tensor, prediction: Tensor, kp_source: Optional[Tensor] = None,
                  kp_driving: Optional[Tensor] = None, deformed: Optional[Tensor] = None,
                  occlusion_map: Optional[Tensor] = None, colormap: str = "gist_rainbow", kp_size: int = 5,
                  max_rows: int = 4) -> np.ndarray:
    """One row per sample (up to ``max_rows``): source (with its keypoints), driving (with its
    keypoints), deformed source, occlusion map, prediction (with the driving keypoints).

    Tensors are batches ``(B, C, H, W)`` (occlusion ``(B, 1, h, w)`` is resized to ``H x W``),
    keypoints ``(B, K, 2)``. Returns an ``(rows*H, columns*W, 3)`` uint8 array.
    """
    height, width = source.shape[2:]
    rows = []
    for b in range(min(max_rows, source.shape[0])):
        columns: list[np.ndarray] = []
        columns.append(_with_kp(source[b], None if kp_source is None else kp_source[b], colormap, kp_size))
        columns.append(_with_kp(driving[b], None if kp_driving is None else kp_driving[b], colormap, kp_size))
        if deformed is not None:
            columns.append(to_numpy_image(deformed[b]))
        if occlusion_map is not None:
            occlusion = torch.nn.functional.interpolate(occlusion_map[b:b + 1].detach().float(),
                                                        size=(height, width), mode="bilinear", align_corners=False)
            columns.append(to_numpy_image(occlusion[0]))
        columns.append(_with_kp(prediction[b], None if kp_driving is None else kp_driving[b], colormap, kp_size))
        rows.append(np.concatenate(columns, axis=1))
    grid = np.concatenate(rows, axis=0)
    return (grid * 255).round().astype(np.uint8)


def _with_kp(image: Tensor, kp: Optional[Tensor], colormap: str, kp_size: int) -> np.ndarray:
    if kp is None:
        return to_numpy_image(image)
    return draw_keypoints(image, kp, colormap, kp_size)

