"""The user-facing jobs as the command line runs them: ``fomm animate`` and ``fomm demo``.

Each job reads files, runs the library and writes files; the library itself (``Animator``,
``load_checkpoint``, ``fomm.data.video``) does the work. Outputs are written to a temporary name
and renamed at the end, so a failed run never leaves a complete-looking partial file.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tqdm import tqdm

from .animate import Animator, prepare_frames
from .checkpoint import load_checkpoint
from .device import resolve_device
from .errors import UserError

logger = logging.getLogger(__name__)

DEFAULT_FPS = 25.0
# The bundled model and sample media (see docs/bundled-model.md for how they were made).
ASSETS = Path(__file__).parent / "assets"
BUNDLED_CHECKPOINT = ASSETS / "sprites-64.pt"
BUNDLED_SOURCE = ASSETS / "source.png"
BUNDLED_DRIVING = ASSETS / "driving.mp4"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


# --------------------------------------------------------------------------------------------
# reading inputs


def read_source_image(path: Path) -> np.ndarray:
    """The source as an ``(H, W, 3)`` uint8 RGB array: an image file, or a video's first frame."""
    from .data.video import iter_frames, to_rgb_uint8

    if not path.exists():
        raise UserError(f"source not found: {path}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        import imageio.v3 as iio

        try:
            image = iio.imread(path)
        except Exception as error:  # imageio raises many types for unreadable images
            raise UserError(f"source {path}: not a readable image ({error})") from None
        if image.ndim == 4:  # animated PNG/WebP: keep the first frame
            image = image[0]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4)):
            raise UserError(f"source {path}: unsupported image layout {image.shape}")
        return to_rgb_uint8(image)
    first = next(iter(iter_frames(path)), None)
    if first is None:
        raise UserError(f"source {path}: has no frames")
    return first


def read_driving_video(path: Path) -> tuple[np.ndarray, Optional[float]]:
    """Driving frames ``(T, H, W, 3)`` uint8 and the video's fps (None for strips and folders)."""
    from .data.video import read_video, video_info

    if not path.exists():
        raise UserError(f"driving video not found: {path}")
    info = video_info(path)
    frames = read_video(path)
    if len(frames) == 0:
        raise UserError(f"driving video {path}: has no frames")
    return frames, info.fps


# --------------------------------------------------------------------------------------------
# fomm animate


def add_animate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, default=BUNDLED_CHECKPOINT,
                        help="model checkpoint, ours or an original .pth.tar (default: the bundled sprites model)")
    parser.add_argument("--config", type=Path, help="YAML config; required for original checkpoints")
    parser.add_argument("--source", type=Path, default=BUNDLED_SOURCE,
                        help="source image, or a video whose first frame is used (default: bundled sample)")
    parser.add_argument("--driving", type=Path, default=BUNDLED_DRIVING,
                        help="driving video: .mp4/.mov/.avi/.gif, a folder of frames or an image strip "
                             "(default: bundled sample)")
    parser.add_argument("--out", type=Path, default=Path("result.mp4"), help="output video (.mp4 or .gif)")
    motion = parser.add_mutually_exclusive_group()
    motion.add_argument("--relative", dest="relative", action="store_true", default=True,
                        help="transfer motion relative to the first driving frame (default)")
    motion.add_argument("--absolute", dest="relative", action="store_false",
                        help="use the driving keypoints as they are")
    parser.add_argument("--adapt-scale", action="store_true", help="scale motion by the keypoint hull sizes")
    parser.add_argument("--find-best-frame", action="store_true",
                        help="take relative motion from the driving frame whose pose best matches the source")
    parser.add_argument("--audio", action="store_true", help="keep the driving video's audio track")
    parser.add_argument("--fps", type=float, help="output frame rate (default: the driving video's)")
    parser.add_argument("--batch-size", type=int, default=8, help="driving frames per forward pass")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--crop", action="store_true", help="centre-crop inputs to the model's aspect ratio "
                        "instead of resizing them whole")
    parser.add_argument("--side-by-side", type=Path, help="also write source | driving | result with keypoints")
    parser.add_argument("--gif", type=Path, help="also write the result as a GIF")


def run_animate(args: argparse.Namespace) -> int:
    from .data.video import write_video

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    device = resolve_device(args.device)
    model = load_checkpoint(args.checkpoint, config=args.config, device=device)
    height, width, _ = model.frame_shape
    source = prepare_frames(read_source_image(args.source), height, width, crop=args.crop)[0]
    driving_frames, video_fps = read_driving_video(args.driving)
    driving = prepare_frames(driving_frames, height, width, crop=args.crop)
    fps = args.fps or video_fps or DEFAULT_FPS

    animator = Animator(model, relative=args.relative, adapt_scale=args.adapt_scale, batch_size=args.batch_size)
    best = animator.find_best_frame(source, driving) if args.find_best_frame else None
    if best is not None:
        logger.info("best matching driving frame: %d", best)
    with tqdm(total=len(driving), desc="animating", unit="frame") as progress:
        result = animator.animate(source, driving, best_frame=best, on_batch=progress.update)

    frames = to_uint8(result)
    write_video(args.out, frames, fps=fps, audio_from=args.driving if args.audio else None)
    written = [args.out]
    if args.gif:
        written.append(write_video(args.gif, frames, fps=fps))
    if args.side_by_side:
        panels = side_by_side(animator, source, driving, result, model.config.visualizer_params.colormap)
        written.append(write_video(args.side_by_side, panels, fps=fps,
                                   audio_from=args.driving if args.audio else None))
    print(f"wrote {len(frames)} frames at {fps:g} fps: " + ", ".join(str(path) for path in written))
    return 0


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """``(T, 3, H, W)`` float in [0, 1] → ``(T, H, W, 3)`` uint8."""
    return (frames.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def side_by_side(animator: Animator, source: torch.Tensor, driving: torch.Tensor, result: torch.Tensor,
                 colormap: str) -> np.ndarray:
    """Frames of source | driving | result, each with the keypoints detected on it."""
    from .visualize import draw_keypoints

    # visualizer_params.kp_size is in pixels of the 256x256 published models: scale it.
    kp_size = max(1, round(animator.model.config.visualizer_params.kp_size * source.shape[-1] / 256))
    kp_source = animator.prepare_source(source).keypoints.value[0]
    kp_driving = animator.detect(driving).value
    kp_result = animator.detect(result).value
    source_panel = draw_keypoints(source, kp_source, colormap, kp_size)
    panels = [np.concatenate([source_panel, draw_keypoints(frame, kp, colormap, kp_size),
                              draw_keypoints(prediction, kp_out, colormap, kp_size)], axis=1)
              for frame, kp, prediction, kp_out in zip(driving, kp_driving, result, kp_result)]
    return (np.stack(panels) * 255).round().astype(np.uint8)


# --------------------------------------------------------------------------------------------
# fomm demo


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("fomm-demo"), help="output folder")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")


def run_demo(args: argparse.Namespace) -> int:
    """Animate the bundled sample with the bundled model and write every kind of output."""
    from .data.video import write_video
    from .visualize_cmd import analyse_frame, motion_figure, save_figure

    for asset in (BUNDLED_CHECKPOINT, BUNDLED_SOURCE, BUNDLED_DRIVING):
        if not asset.is_file():
            raise UserError(f"bundled asset missing: {asset} (reinstall fomm)")
    device = resolve_device(args.device)
    model = load_checkpoint(BUNDLED_CHECKPOINT, device=device)
    height, width, _ = model.frame_shape
    source = prepare_frames(read_source_image(BUNDLED_SOURCE), height, width)[0]
    driving_frames, fps = read_driving_video(BUNDLED_DRIVING)
    driving = prepare_frames(driving_frames, height, width)
    fps = fps or DEFAULT_FPS

    animator = Animator(model, relative=True, batch_size=16)
    with tqdm(total=len(driving), desc="animating", unit="frame") as progress:
        result = animator.animate(source, driving, on_batch=progress.update)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    frames = to_uint8(result)
    colormap = model.config.visualizer_params.colormap
    written = {
        "animation": write_video(out / "result.mp4", frames, fps=fps),
        "side by side (source | driving | result, with keypoints)": write_video(
            out / "side_by_side.mp4", side_by_side(animator, source, driving, result, colormap), fps=fps),
        "GIF": write_video(out / "result.gif", frames, fps=fps),
    }
    middle = len(driving) // 2
    analysis = analyse_frame(model, source.to(device), driving[middle].to(device), initial=driving[0].to(device))
    written["keypoints, heatmaps, masks and occlusion (one frame)"] = save_figure(
        motion_figure(analysis, colormap, frame_index=middle), out / "keypoints.png")

    print(f"\nAnimated the bundled sample ({len(frames)} frames, {width}x{height}) with the bundled model:")
    for what, path in written.items():
        print(f"  {what:55s} {path}")
    print("\nNext:")
    print("  your own media:      fomm animate --source face.png --driving video.mp4 --out result.mp4")
    print("  a published model:   fomm animate --checkpoint vox-cpk.pth.tar --config configs/vox-256.yaml ...")
    print("  train on your data:  fomm train --config configs/vox-256.yaml --log-dir runs/mine")
    print("  docs:                README.md and docs/ in the repository")
    return 0
