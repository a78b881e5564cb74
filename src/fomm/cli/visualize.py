"""``fomm visualize``: one picture of everything the model computes for one driving frame (see
:func:`fomm.visualize.motion_figure`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..assets import BUNDLED_DRIVING, BUNDLED_SOURCE
from ..data.frames import fit_frames
from ..data.media import read_source_image
from ..data.video import read_frames_at, video_info
from ..errors import DataError, UserError
from ..visualize import analyse_frame, motion_figure, save_figure
from .arguments import add_model_arguments, add_motion_arguments, load_model, motion_settings
from .outputs import check_output_file

OUTPUT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    add_motion_arguments(parser)
    parser.add_argument("--source", type=Path, default=BUNDLED_SOURCE,
                        help="source image (or a video: its first frame; default: bundled sample)")
    parser.add_argument("--driving", type=Path, default=BUNDLED_DRIVING, help="driving video (default: bundled sample)")
    parser.add_argument("--frame", type=int, default=0, help="index of the driving frame to show (from 0)")
    parser.add_argument("--out", type=Path, default=Path("motion.png"), help="picture to write (.png, .pdf, .svg, .jpg)")


def _driving_frames(path: Path, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(first frame, frame ``index``) of a driving video as ``(H, W, 3)`` uint8."""
    if not path.exists():
        raise DataError(f"driving video not found: {path}")
    count = video_info(path).num_frames
    if index < 0 or index >= count:
        raise UserError(f"--frame {index} is out of range: {path} has {count} frames (0..{count - 1})")
    frames = read_frames_at(path, [0, index])
    return frames[0], frames[1]


def run(args: argparse.Namespace) -> int:
    check_output_file(args.out, OUTPUT_SUFFIXES, "--out", create_folder=True)
    source_image = read_source_image(args.source)
    first, chosen = _driving_frames(args.driving, args.frame)
    model = load_model(args)
    height, width, _ = model.frame_shape
    source = fit_frames(source_image, height, width)[0]
    driving = fit_frames(np.stack([first, chosen]), height, width)
    analysis = analyse_frame(model, source, driving[1], initial=driving[0], settings=motion_settings(args, model))
    figure = motion_figure(analysis, model.config.visualizer_params.colormap, frame_index=args.frame)
    save_figure(figure, args.out)
    print(f"wrote {args.out}")
    return 0
