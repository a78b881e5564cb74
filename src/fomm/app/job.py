"""One animation request of the web app, free of any web framework: a source image file and a
driving video file in, the result video (with the driving video's sound), the side-by-side video
and the keypoints picture out, with progress reported as it goes.

Every problem with the uploads (a file that is not an image or a video, no face found to crop to,
a video too long) is a :class:`fomm.errors.UserError` whose message the page shows as it is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from torch import Tensor

from ..animate import BACKENDS, PRECISIONS, Animator, MotionSettings, prepare_frames, to_uint8
from ..crop import crop_to_subject
from ..data.media import read_driving_video, read_source_image
from ..data.video import video_info, write_frames
from ..errors import DataError, UserError
from ..models import FommModel
from ..visualize import analyse_frame, motion_figure, save_figure, side_by_side

__all__ = ["CROPS", "DEFAULT_FPS", "AnimationOptions", "AnimationOutputs", "Progress", "fit_frames",
           "run_animation"]

logger = logging.getLogger(__name__)

#: How inputs are fitted to the model's frame: around the face or the body found in them, the
#: largest centred region of the model's shape, or the whole frame resized.
CROPS = ("none", "center", "face", "body")
DEFAULT_FPS = 25.0

#: ``progress(fraction done in [0, 1], what is being done)``
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class AnimationOptions:
    """The choices of the page besides the two files (defaults: those of ``fomm animate``)."""

    relative: bool = True
    adapt_scale: bool = False
    find_best_frame: bool = False
    crop: str = "none"
    precision: str = "auto"
    backend: str = "auto"
    batch_size: int = 8
    max_frames: Optional[int] = None

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise UserError(f"unknown crop {self.crop!r} (use one of {', '.join(CROPS)})")
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r} (use one of {', '.join(PRECISIONS)})")
        if self.backend not in BACKENDS:
            raise UserError(f"unknown backend {self.backend!r} (use one of {', '.join(BACKENDS)})")


@dataclass(frozen=True)
class AnimationOutputs:
    """The files written for one request, and what they hold."""

    result: Path  # the animation, with the driving video's sound when it has any
    side_by_side: Path  # source | driving | result, keypoints drawn
    keypoints: Path  # the motion figure of the middle driving frame (PNG)
    num_frames: int
    fps: float
    reference_frame: int  # the driving frame relative motion was taken from
    engine: str  # what ran the networks: "<backend> <precision>"

    @property
    def files(self) -> list[Path]:
        return [self.result, self.side_by_side, self.keypoints]


def _no_progress(fraction: float, description: str) -> None:
    return None


def fit_frames(frames: np.ndarray, height: int, width: int, crop: str, what: str) -> Tensor:
    """``(T, H, W, 3)`` uint8 frames -> ``(T, 3, height, width)`` in [0, 1], cropped by ``crop``
    (one of :data:`CROPS`). A face or body crop is one box for all frames
    (:func:`fomm.crop.crop_to_subject`): the union of the subject's boxes, so the motion inside
    it is the subject's own. Raises DataError naming ``what`` when no subject is found."""
    if crop in ("none", "center"):
        return prepare_frames(frames, height, width, crop=crop == "center")
    try:
        cropped = crop_to_subject(frames, crop, height / width, what=what)
    except DataError as error:
        raise DataError(f"{error} to crop to: choose the crop 'center' or 'none', or another {what}") from None
    return prepare_frames(cropped, height, width)


def _check_length(driving: Path, max_frames: Optional[int]) -> None:
    if max_frames is None:
        return
    frames = video_info(driving).num_frames
    if frames > max_frames:
        raise DataError(f"the driving video has {frames} frames; this server animates at most {max_frames} "
                        f"(cut the video, or start the server with a larger --max-frames)")


def run_animation(model: FommModel, source: Optional[Path], driving: Optional[Path], options: AnimationOptions,
                  out_dir: Path, progress: Progress = _no_progress) -> AnimationOutputs:
    """Animate the image file ``source`` with the video file ``driving`` and write the outputs
    into the existing folder ``out_dir``. Raises UserError for a missing or unusable upload."""
    if source is None:
        raise UserError("no source image: upload a picture (or pick a sample below)")
    if driving is None:
        raise UserError("no driving video: upload a video (or pick a sample below)")
    source, driving = Path(source), Path(driving)
    progress(0.0, "reading the uploads")
    _check_length(driving, options.max_frames)
    height, width, _ = model.frame_shape
    source_image = fit_frames(read_source_image(source)[None], height, width, options.crop, "source image")[0]
    driving_frames, video_fps = read_driving_video(driving)
    driving_video = fit_frames(driving_frames, height, width, options.crop, "driving video")
    fps = video_fps or DEFAULT_FPS

    defaults = model.config.animate_params.normalization_params
    motion = MotionSettings(relative=options.relative, adapt_scale=options.adapt_scale,
                            relative_jacobian=defaults.use_relative_jacobian)
    animator = Animator.with_settings(model, motion, batch_size=options.batch_size, precision=options.precision,
                                      backend=options.backend)
    reference = 0
    if options.find_best_frame:
        progress(0.05, "finding the driving frame that best matches the source")
        reference = animator.find_best_frame(source_image, driving_video)
        logger.info("best matching driving frame: %d", reference)

    total = len(driving_video)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        progress(0.1 + 0.6 * done / total, f"animating frame {done} of {total}")

    progress(0.1, "animating")
    result = animator.animate(source_image, driving_video, best_frame=reference, on_batch=advance)

    progress(0.7, "drawing the keypoints")
    visualizer = model.config.visualizer_params
    panels = side_by_side(animator, source_image, driving_video, result, visualizer.colormap,
                          visualizer.draw_border)
    device = animator.device
    middle = total // 2
    analysis = analyse_frame(model, source_image.to(device), driving_video[middle].to(device),
                             initial=driving_video[reference].to(device), relative=options.relative)
    figure = motion_figure(analysis, visualizer.colormap, frame_index=middle)

    progress(0.85, "writing the videos")
    audio = driving if video_info(driving).has_audio else None
    out_dir = Path(out_dir)
    outputs = AnimationOutputs(result=out_dir / "result.mp4", side_by_side=out_dir / "side_by_side.mp4",
                               keypoints=out_dir / "keypoints.png", num_frames=total, fps=fps,
                               reference_frame=reference, engine=animator.engine.name)
    write_frames(outputs.result, to_uint8(result), fps=fps, audio_from=audio)
    write_frames(outputs.side_by_side, panels, fps=fps, audio_from=audio)
    save_figure(figure, outputs.keypoints)
    progress(1.0, "done")
    return outputs
