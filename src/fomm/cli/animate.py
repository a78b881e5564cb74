"""``fomm animate``: a source image moved by a driving video, or every pair of a dataset's test
split (the original ``run.py --mode animate``).

The flags of the original ``demo.py`` work too (``--source_image``, ``--driving_video``,
``--result_video``, ``--find_best_frame``, ``--best_frame``, ``--cpu``, ...).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..animate import Animator
from ..assets import BUNDLED_DRIVING, BUNDLED_SOURCE
from ..config import DatasetParams
from ..data.media import read_source_image
from ..data.video import DEFAULT_FPS, VIDEO_OUTPUT_SUFFIXES, video_info, write_video
from ..data.frames import to_uint8
from ..errors import DataError, UserError
from ..pipeline import CROPS, Outputs, Reference, animate_to_files, find_reference, frame_inputs
from ..visualize import SideBySide
from .arguments import add_model_arguments, add_motion_arguments, load_model, motion_settings, positive_int
from ..hints import bundled_model_on_a_photo
from .outputs import check_distinct, check_fps, check_output_file, check_output_folder

logger = logging.getLogger(__name__)



def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--cpu", dest="device", action="store_const", const="cpu",
                        help="run on the CPU (the original demo.py's flag; same as --device cpu)")
    add_motion_arguments(parser)
    media = parser.add_argument_group("media")
    media.add_argument("--source", "--source_image", dest="source", type=Path,
                       help="source image, or a video whose first frame is used (default: bundled sample)")
    media.add_argument("--driving", "--driving_video", dest="driving", type=Path,
                       help="driving video: .mp4/.mov/.avi/.gif, a folder of frames or an image strip "
                            "(default: bundled sample)")
    media.add_argument("--out", "--result_video", dest="out", type=Path,
                       help=f"output video ({', '.join(VIDEO_OUTPUT_SUFFIXES)}; default result.mp4); with --dataset, "
                            f"the output folder")
    media.add_argument("--crop", nargs="?", const="center", default="none", choices=CROPS,
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
    source_path = args.source or BUNDLED_SOURCE
    driving_path = args.driving or BUNDLED_DRIVING
    out = args.out or Path("result.mp4")
    outputs = [check_output_file(out, VIDEO_OUTPUT_SUFFIXES, "--out")]
    if args.gif:
        outputs.append(check_output_file(args.gif, (".gif",), "--gif"))
    if args.side_by_side:
        outputs.append(check_output_file(args.side_by_side, VIDEO_OUTPUT_SUFFIXES, "--side-by-side"))
    check_distinct(outputs, inputs={"--source": source_path, "--driving": driving_path})
    check_fps(args.fps)

    model = load_model(args)
    height, width, _ = model.frame_shape
    source_image = read_source_image(source_path)
    info = video_info(driving_path)  # a readable driving video, before any work
    hint = bundled_model_on_a_photo(args.checkpoint, source_image)
    if hint:
        logger.warning(hint)
    source_framing, driving_framing = frame_inputs(source_image, driving_path, height, width, args.crop,
                                                   f"--source {source_path}", f"--driving {driving_path}")
    source = source_framing(source_image)[0]
    fps = args.fps or info.fps or DEFAULT_FPS

    animator = Animator.with_settings(model, motion_settings(args, model), batch_size=args.batch_size,
                                      precision=args.precision, backend=args.backend)
    started = time.perf_counter()
    reference = _reference(args, animator, source, driving_path, driving_framing, info.num_frames)
    first_frame: list[float] = []

    def advance(count: int) -> None:
        if not first_frame:
            first_frame.append(time.perf_counter() - started)
        bar.update(count)

    audio = driving_path if args.audio else None
    files = Outputs(result=out, gif=args.gif, side_by_side=args.side_by_side, fps=fps, audio_from=audio,
                    draw_side_by_side=SideBySide(model, source) if args.side_by_side else None)
    with tqdm(total=info.num_frames or None, desc="animating", unit="frame") as bar, logging_redirect_tqdm():
        summary = animate_to_files(animator, source, driving_path, driving_framing, files, reference, progress=advance)
    seconds = time.perf_counter() - started
    print(f"wrote {summary.frames} frames at {fps:g} fps ({summary.engine}; first frame after "
          f"{first_frame[0] if first_frame else seconds:.1f} s, {summary.frames / seconds:.1f} frames/s in all): "
          + ", ".join(str(path) for path in files.paths()))
    return 0


def _reference(args: argparse.Namespace, animator: Animator, source, driving: Path, framing, num_frames: int
               ) -> Reference:
    """The driving frame relative motion is taken from: --best-frame N, the best match of the
    source's pose with --find-best-frame (a first pass over the video), else the first."""
    if args.best_frame is not None:
        if not 0 <= args.best_frame < num_frames:
            raise UserError(f"--best-frame {args.best_frame} is out of range: the driving video has "
                            f"{num_frames} frames (0..{num_frames - 1})")
        return Reference(args.best_frame)
    if args.find_best_frame:
        found = find_reference(animator, source, driving, framing)
        logger.info("best matching driving frame: %d", found.index)
        return found
    return Reference()


def _run_dataset(args: argparse.Namespace) -> int:
    """Animate ``--num-pairs`` (source, driving) pairs of the dataset's test split: the first frame
    of the source video moved by the whole driving video, written to ``--out/<source>-<driving>``
    in the config's ``animate_params.format``."""
    from ..data.datasets import FramesDataset, PairedDataset

    ignored = [option for option, value in (("--gif", args.gif), ("--side-by-side", args.side_by_side),
                                            ("--crop", args.crop != "none"), ("--source", args.source),
                                            ("--driving", args.driving), ("--audio", args.audio)) if value]
    if ignored:
        raise UserError(f"--dataset animates a dataset's pairs into --out DIR; {', '.join(ignored)} "
                        f"{'applies' if len(ignored) == 1 else 'apply'} to one source and driving video only")
    if args.out is None:
        raise UserError("--dataset needs --out DIR, the folder to write the animations to")
    if not args.dataset.is_dir():
        raise UserError(f"--dataset {args.dataset}: not a folder")
    check_output_folder(args.out, "--out")
    check_fps(args.fps)
    model = load_model(args)
    config = model.config
    height, width, channels = model.frame_shape
    base = config.dataset_params.model_dump() if config.dataset_params is not None else {}
    base.update(root_dir=str(args.dataset), frame_shape=(height, width, channels), augmentation_params=None)
    if args.pairs is not None:
        base["pairs_list"] = str(args.pairs)
    params = DatasetParams(**base)
    pairs = PairedDataset(FramesDataset(params, is_train=False), args.num_pairs or config.animate_params.num_pairs)
    if len(pairs) == 0:
        raise DataError(f"--dataset {args.dataset}: no pairs to animate")
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
        write_video(args.out / name, to_uint8(result), fps=args.fps or DEFAULT_FPS)
        written += 1
    print(f"wrote {written} animations to {args.out} ({suffix})")
    return 0
