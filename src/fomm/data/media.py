"""A user's media for animation: one source image and one driving video, of any size and format,
read the right way up (see :mod:`fomm.data.video`): a phone's rotated video or JPEG, a
variable-frame-rate clip and an animated PNG/WebP driving video all read as they play.

Errors name the file and what is wrong with it (:class:`fomm.errors.DataError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import DataError, VideoReadError
from .video import IMAGE_EXTENSIONS, iter_frames, read_image, read_video, video_info

__all__ = ["read_source_image", "read_driving_video"]


def read_source_image(path: Path) -> np.ndarray:
    """The source as an ``(H, W, 3)`` uint8 RGB array, the right way up: an image file (its EXIF
    orientation applied; an animated image gives its first frame), or a video's first frame
    (its display rotation applied)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"source not found: {path}")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        try:
            return read_image(path)
        except VideoReadError as error:
            raise DataError(f"source {error}") from None
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
