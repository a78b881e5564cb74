"""Data layer: video I/O, datasets of videos in the original layouts, augmentation."""

from .augmentation import (
    Augmentation,
    ColorJitter,
    RandomCrop,
    RandomFlip,
    RandomResize,
    RandomRotation,
    fit_to_size,
    hsv_to_rgb,
    rgb_to_hsv,
)
from .datasets import (
    DatasetRepeater,
    FrameCache,
    FramesDataset,
    PairedDataset,
    SkippedVideo,
    list_videos,
    split_train_test,
    video_id,
)
from ..errors import BadDataWarning, DataError, VideoReadError, VideoWriteError
from .video import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    VideoInfo,
    count_frames,
    is_animation,
    is_video_path,
    iter_frames,
    read_image,
    read_frames_at,
    read_video,
    resize_frame,
    to_rgb_uint8,
    video_info,
    write_video,
)

__all__ = [
    # errors
    "DataError",
    "VideoReadError",
    "VideoWriteError",
    "BadDataWarning",
    # video I/O
    "VideoInfo",
    "VIDEO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "is_animation",
    "is_video_path",
    "read_image",
    "video_info",
    "count_frames",
    "iter_frames",
    "read_video",
    "read_frames_at",
    "write_video",
    "to_rgb_uint8",
    "resize_frame",
    # datasets
    "FramesDataset",
    "DatasetRepeater",
    "PairedDataset",
    "FrameCache",
    "SkippedVideo",
    "list_videos",
    "split_train_test",
    "video_id",
    # augmentation
    "Augmentation",
    "RandomFlip",
    "RandomRotation",
    "RandomResize",
    "RandomCrop",
    "ColorJitter",
    "fit_to_size",
    "rgb_to_hsv",
    "hsv_to_rgb",
]
