"""``fomm animate``: a source image moved by a driving video, or every pair of a dataset's test
split (the original ``run.py --mode animate``).

The flags of the original ``demo.py`` work too (``--source_image``, ``--driving_video``,
``--result_video``, ``--find_best_frame``, ``--best_frame``, ``--cpu``, ...).
"""

from __future__ import annotations

import argparse
import logging
import time
from functools import partial
from pathlib import Path

import torch
from tqdm import tqdm

from ..animate import Animator, prepare_frames, to_uint8
from ..assets import BUNDLED_DRIVING, BUNDLED_SOURCE
from ..config import DatasetParams
from ..crop import crop_to_subject
from ..data.media import read_source_image
from ..data.video import video_info, write_frames
from ..errors import UserError
from ..io import staged_outputs
from ..streaming import (
    FramePreparation,
    animate_video,
    close_writers,
    find_reference_frame,
    subject_box,
    write_in_background,
)
from ..visualize import side_by_side
from .arguments import add_model_arguments, add_motion_arguments, load_model, motion_settings, positive_int
from .outputs import check_distinct, check_fps, check_output_file, check_output_folder

logger = logging.getLogger(__name__)

DEFAULT_FPS = 25.0
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v", ".gif")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--cpu", dest="device", action="store_const", const="cpu",
                        help="run on the CPU (the original demo.py's flag; same as --device cpu)")
    add_motion_arguments(parser)
    media = parser.add_argument_group("media")
    media.add_argument("--source", "--source_image", dest="source", type=Path, default=BUNDLED_SOURCE,
                       help="source image, or a video whose first frame is used (default: bundled sample)")
    media.add_argument("--driving", "--driving_video", dest="driving", type=Path, default=BUNDLED_DRIVING,
                       help="driving video: .mp4/.mov/.avi/.gif, a folder of frames or an image strip "
                            "(default: bundled sample)")
    media.add_argument("--out", "--result_video", dest="out", type=Path,
                       help="output video (.mp4, .mov, .mkv or .gif; default result.mp4); with --dataset, "
                            "the output folder")
    media.add_argument("--crop", nargs="?", const="center", default="none",
                       choices=("face", "body", "center", "none"),
                       help="frame the source and the driving video before resizing them to the model: 'face' "
                            "or 'body' crops to the subject (one box for the whole driving video, as `fomm crop` "
                            "finds it), 'center' (plain --crop) to the largest centred region of the model's "
                            "shape; default 'none' resizes whole frames")
    media.add_argument("--audio", action="store_true", help="keep the driving video's audio track")
    media.add_argument("--fps", type=float, help="output frame rate (default: the driving video's)")
    media.add_argument("--side-by-side", type=Path, help="also write source | driving | result with keypoints")
    media.add_argument("--gif", type=Path, help="also write the result as a GIF")
    best = parser.add_argument_group("reference frame of relative motion")
    best.add_argument("--find-best-frame", "--find_best_frame", dest="find_best_frame", action="store_true",
                      help="take relative motion from the driving frame whose pose best matches the source")
    best.add_argument("--best-frame", "--best_frame", dest="best_frame", type=int, metavar="N",
                      help="take relative motion from driving frame N (from 0)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="driving frames per forward pass")
    dataset = parser.add_argument_group("a dataset's pairs (the original run.py --mode animate)")
    dataset.add_argument("--dataset", type=Path, help="dataset root: animate pairs of its test split into --out DIR")
    dataset.add_argument("--pairs", type=Path, help="CSV with columns source,driving naming the videos to pair "
                         "(default: the config's dataset_params.pairs_list, else random pairs)")
    dataset.add_argument("--num-pairs", type=positive_int,
                         help="how many pairs (default: the config's animate_params.num_pairs)")


def run(args: argparse.Namespace) -> int:
    if args.find_best_frame and args.best_frame is not None:
        raise UserError("--find-best-frame and --best-frame N exclude each other")
    if args.dataset is not None:
        return _run_dataset(args)
    out = args.out or Path("result.mp4")
    outputs = [check_output_file(out, VIDEO_SUFFIXES, "--out")]
    if args.gif:
        outputs.append(check_output_file(args.gif, (".gif",), "--gif"))
    if args.side_by_side:
        outputs.append(check_output_file(args.side_by_side, VIDEO_SUFFIXES, "--side-by-side"))
    check_distinct(outputs, inputs={"--source": args.source, "--driving": args.driving})
    check_fps(args.fps)

    model = load_model(args)
    height, width, _ = model.frame_shape
    source_image = read_source_image(args.source)
    info = video_info(args.driving)  # a readable driving video, before any work
    box = None
    if args.crop in ("face", "body"):
        source_image = crop_to_subject(source_image[None], args.crop, height / width, f"--source {args.source}")[0]
        box = subject_box(args.driving, args.crop, height / width, f"--driving {args.driving}")
    preparation = FramePreparation(height, width, box=box, centre_crop=args.crop == "center")
    source = prepare_frames(source_image, height, width, crop=args.crop == "center")[0]
    fps = args.fps or info.fps or DEFAULT_FPS

    animator = Animator.with_settings(model, motion_settings(args, model), batch_size=args.batch_size,
                                      precision=args.precision, backend=args.backend)
    reference = _reference_frame(args, animator, source, preparation, info.num_frames)
    audio = args.driving if args.audio else None
    visualizer = model.config.visualizer_params
    count = 0
    kp_source = None
    started, first_frame_seconds = time.perf_counter(), None
    with staged_outputs(outputs) as staged:  # every output, or none of them
        writes = {out: partial(write_frames, staged[out], fps=fps, audio_from=audio)}
        if args.gif:
            writes[args.gif] = partial(write_frames, staged[args.gif], fps=fps)
        if args.side_by_side:
            writes[args.side_by_side] = partial(write_frames, staged[args.side_by_side], fps=fps, audio_from=audio)
        writers = write_in_background(writes)
        failed = True
        try:
            with tqdm(total=info.num_frames or None, desc="animating", unit="frame") as progress:
                for batch in animate_video(animator, source, args.driving, preparation, reference):
                    if first_frame_seconds is None:  # the engine's choice and set-up included
                        first_frame_seconds = time.perf_counter() - started
                    frames = to_uint8(batch.prediction)
                    writers[out].put(frames)
                    if args.gif:
                        writers[args.gif].put(frames)
                    if args.side_by_side:
                        if kp_source is None:  # once: the stream has encoded the source by now
                            kp_source = animator.prepare_source(source).keypoints.value[0]
                        writers[args.side_by_side].put(side_by_side(
                            animator, source, batch.driving, batch.prediction, visualizer.colormap,
                            visualizer.draw_border, kp_source=kp_source, kp_driving=batch.kp_driving.value))
                    count += len(frames)
                    progress.update(len(frames))
            failed = False
        finally:
            close_writers(writers.values(), failed)
    engine = animator.engine.name if animator.engine is not None else "no engine"
    first = f", first frame after {first_frame_seconds:.1f} s" if first_frame_seconds is not None else ""
    print(f"wrote {count} frames at {fps:g} fps ({engine}{first}): " + ", ".join(str(path) for path in outputs))
    return 0


def _reference_frame(args: argparse.Namespace, animator: Animator, source: torch.Tensor,
                     preparation: FramePreparation, num_frames: int) -> int:
    """The driving frame relative motion is taken from: --best-frame N, the best match of the
    source's pose with --find-best-frame (a first pass over the video), else the first."""
    if args.best_frame is not None:
        if not 0 <= args.best_frame < num_frames:
            raise UserError(f"--best-frame {args.best_frame} is out of range: the driving video has "
                            f"{num_frames} frames (0..{num_frames - 1})")
        return args.best_frame
    if args.find_best_frame:
        best = find_reference_frame(animator, source, args.driving, preparation)
        logger.info("best matching driving frame: %d", best)
        return best
    return 0


def _run_dataset(args: argparse.Namespace) -> int:
    """Animate ``--num-pairs`` (source, driving) pairs of the dataset's test split: the first frame
    of the source video moved by the whole driving video, written to ``--out/<source>-<driving>``
    in the config's ``animate_params.format``."""
    from ..data.datasets import FramesDataset, PairedDataset

    if args.out is None:
        raise UserError("--dataset needs --out DIR, the folder to write the animations to")
    if not args.dataset.is_dir():
        raise UserError(f"--dataset {args.dataset}: not a folder")
    check_output_folder(args.out, "--out")
    model = load_model(args)
    config = model.config
    height, width, channels = model.frame_shape
    base = config.dataset_params.model_dump() if config.dataset_params is not None else {}
    base.update(root_dir=str(args.dataset), frame_shape=(height, width, channels), augmentation_params=None)
    if args.pairs is not None:
        base["pairs_list"] = str(args.pairs)
    params = DatasetParams(**base)
    pairs = PairedDataset(FramesDataset(params, is_train=False), args.num_pairs or config.animate_params.num_pairs)
    animator = Animator.with_settings(model, motion_settings(args, model), batch_size=args.batch_size,
                                      precision=args.precision, backend=args.backend)
    suffix = config.animate_params.format
    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    for index in tqdm(range(len(pairs)), desc="animating pairs", unit="pair"):
        sample = pairs[index]
        source = sample["source_video"][:, 0]
        driving = sample["driving_video"].permute(1, 0, 2, 3)
        best = animator.find_best_frame(source, driving) if args.find_best_frame else args.best_frame
        result = animator.animate(source, driving, best_frame=best)
        name = f"{Path(sample['source_name']).stem}-{Path(sample['driving_name']).stem}{suffix}"
        write_frames(args.out / name, to_uint8(result), fps=args.fps or DEFAULT_FPS)
        written += 1
    print(f"wrote {written} animations to {args.out} ({suffix})")
    return 0
