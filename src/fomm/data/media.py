"""A user's media for animation: one source image and one driving video, of any size and format.

Errors name the file and what is wrong with it (:class:`fomm.errors.DataError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import DataError
from .video import IMAGE_EXTENSIONS, iter_frames, read_video, to_rgb_uint8, video_info

__all__ = ["read_source_image", "read_driving_video"]


def read_source_image(path: Path) -> np.ndarray:
    """The source as an ``(H, W, 3)`` uint8 RGB array: an image file, or a video's first frame."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"source not found: {path}")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        import imageio.v3 as iio

        try:
            image = iio.imread(path)
        except Exception as error:  # imageio raises many types for unreadable images
            raise DataError(f"source {path}: not a readable image ({error})") from None
        if image.ndim == 4:  # animated PNG/WebP: keep the first frame
            image = image[0]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4)):
            raise DataError(f"source {path}: unsupported image layout {image.shape}")
        return to_rgb_uint8(image)
    first = next(iter(iter_frames(path)), None)
    if first is None:
        raise DataError(f"source {path}: has no frames")
    return first


def read_driving_video(path: Path) -> tuple[np.ndarray, Optional[float]]:
    """Driving frames ``(T, H, W, 3)`` uint8 and the video's fps (None for strips and folders)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"driving video not found: {path}")
    info = video_info(path)
    frames = read_video(path)
    if len(frames) == 0:
        raise DataError(f"driving video {path}: has no frames")
    return frames, info.fps
