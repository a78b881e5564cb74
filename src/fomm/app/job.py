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

from ..animate import BACKENDS, PRECISIONS, Animator
from ..data.media import read_source_image
from ..data.video import DEFAULT_FPS, video_info
from ..errors import DataError, UserError
from ..hints import bundled_model_on_a_photo
from ..models import MotionModel, MotionSettings
from ..pipeline import CROPS, Outputs, Reference, animate_to_files, find_reference, frame_inputs
from ..visualize import SideBySide, analyse_frame, motion_figure, save_figure

__all__ = ["CROPS", "AnimationOptions", "AnimationOutputs", "Progress", "run_animation"]

logger = logging.getLogger(__name__)

#: ``progress(fraction done in [0, 1], what is being done)``
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class AnimationOptions:
    """The choices of the page besides the two files (defaults: those of ``fomm animate``).

    ``motion``: one of :data:`~fomm.models.MOTION_MODES`, or None for the model's own default (as
    ``fomm animate`` without ``--motion``: ``learned`` for a model with a point transfer)."""

    adapt_scale: bool = False
    find_best_frame: bool = False
    crop: str = "none"
    precision: str = "auto"
    backend: str = "auto"
    batch_size: int = 8
    max_frames: Optional[int] = None
    motion: Optional[str] = None

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
    side_by_side: Path  # source | driving | result, motion drawn
    keypoints: Path  # the motion figure of the middle driving frame (PNG)
    num_frames: int
    fps: float
    reference_frame: int  # the driving frame relative motion was taken from
    engine: str  # what ran the networks: "<backend> <precision>"
    motion: str  # relative / absolute / avd / learned
    note: Optional[str] = None  # advice for the user (the bundled toy model on a photo)

    @property
    def files(self) -> list[Path]:
        return [self.result, self.side_by_side, self.keypoints]

    @property
    def description(self) -> str:
        """One line for the page: what was done."""
        how = {"relative": f"motion taken relative to driving frame {self.reference_frame}",
               "absolute": "absolute motion (the driving poses as they are)",
               "avd": "motion through the model's AVD network",
               "learned": f"motion taken relative to driving frame {self.reference_frame}, corrected by the "
                          "model's learned point transfer"}[self.motion]
        text = f"{self.num_frames} frames at {self.fps:g} fps, {how}, run by {self.engine}"
        return f"{text}. {self.note}" if self.note else text


def _no_progress(fraction: float, description: str) -> None:
    return None


def _check_length(frames: int, max_frames: Optional[int]) -> None:
    if max_frames is not None and frames > max_frames:
        raise DataError(f"the driving video has {frames} frames; this server animates at most {max_frames} "
                        f"(cut the video, or start the server with a larger --max-frames)")


def _kept_frame(summary, index: int, batch_size: int, fallback):
    """Driving frame ``index`` as the model saw it, from the batches the pipeline kept."""
    batch = summary.kept.get(index)
    return batch.driving[index % batch_size] if batch is not None else fallback


def run_animation(model: MotionModel, source: Optional[Path], driving: Optional[Path], options: AnimationOptions,
                  out_dir: Path, progress: Progress = _no_progress, checkpoint: Optional[Path] = None
                  ) -> AnimationOutputs:
    """Animate the image file ``source`` with the video file ``driving`` into the existing folder
    ``out_dir``, through the same streaming pipeline as ``fomm animate`` (memory does not grow with
    the video's length). Raises UserError for a missing or unusable upload."""
    if source is None:
        raise UserError("no source image: upload a picture (or pick a sample below)")
    if driving is None:
        raise UserError("no driving video: upload a video (or pick a sample below)")
    source, driving = Path(source), Path(driving)
    progress(0.0, "reading the uploads")
    info = video_info(driving)
    _check_length(info.num_frames, options.max_frames)
    height, width, _ = model.frame_shape
    source_image = read_source_image(source)
    try:
        source_framing, driving_framing = frame_inputs(source_image, driving, height, width, options.crop,
                                                       "the source picture", "the driving video")
    except DataError as error:
        raise DataError(f"{error}: choose the crop 'center' or 'none', or other media") from None
    source_tensor = source_framing(source_image)[0]
    fps = info.fps or DEFAULT_FPS

    defaults = model.default_motion()
    settings = MotionSettings(mode=options.motion or defaults.mode, adapt_scale=options.adapt_scale,
                              relative_jacobian=defaults.relative_jacobian)
    animator = Animator.with_settings(model, settings, batch_size=options.batch_size, precision=options.precision,
                                      backend=options.backend)
    # The first request for a model may measure which runtime runs it fastest (auto): say so.
    progress(0.05, "choosing the fastest runtime for this model (once per model and machine)")
    animator.prepare_source(source_tensor)
    reference = Reference()
    if options.find_best_frame:
        progress(0.05, "finding the driving frame that best matches the source")
        reference = find_reference(animator, source_tensor, driving, driving_framing)
        logger.info("best matching driving frame: %d", reference.index)

    total = max(info.num_frames, 1)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        progress(0.1 + 0.8 * min(done / total, 1.0), f"animating frame {done} of {total}")

    out_dir = Path(out_dir)
    files = Outputs(result=out_dir / "result.mp4", side_by_side=out_dir / "side_by_side.mp4", fps=fps,
                    audio_from=driving if info.has_audio else None,
                    draw_side_by_side=SideBySide(model, source_tensor))
    middle = info.num_frames // 2
    progress(0.1, "animating")
    summary = animate_to_files(animator, source_tensor, driving, driving_framing, files, reference,
                               progress=advance, keep=[reference.index, middle])
    progress(0.9, "drawing the keypoints")
    frame, initial = (_kept_frame(summary, index, options.batch_size, source_tensor)
                      for index in (middle, reference.index))
    analysis = analyse_frame(model, source_tensor, frame, initial=initial, settings=settings)
    keypoints = save_figure(motion_figure(analysis, model.config.visualizer_params.colormap, frame_index=middle),
                            out_dir / "keypoints.png")
    progress(1.0, "done")
    return AnimationOutputs(result=files.result, side_by_side=files.side_by_side, keypoints=keypoints,
                            num_frames=summary.frames, fps=fps, reference_frame=reference.index,
                            engine=summary.engine, motion=settings.mode,
                            note=bundled_model_on_a_photo(checkpoint, source_image))
