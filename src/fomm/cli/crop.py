"""``fomm crop``: find the subject (a face, or a body) of an image or a video and write it cropped
the way the published models were trained (the original ``crop-video.py``).

A video gives one segment per subject and shot (it ends only at a scene change or where its
subject is lost), each written to its own file with its own audio; ``--follow`` moves a crop of
fixed size smoothly with the subject instead of one crop holding all it does. A last line says
which frames no file keeps, and why. ``--dry-run`` prints the plan as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Optional

import numpy as np
from tqdm import tqdm

from ..crop import (
    DEFAULT_DETECTORS,
    DEFAULT_MARGINS,
    DETECTORS,
    SUBJECTS,
    Box,
    LeftOut,
    Segment,
    SubjectDetector,
    crop_frame,
    detect_video,
    left_out_frames,
    make_detector,
    plan_segments,
    subject_crop,
)
from ..data.media import read_source_image
from ..data.video import (DEFAULT_FPS, IMAGE_EXTENSIONS, VIDEO_OUTPUT_SUFFIXES, is_animation, iter_frames, video_info,
                          write_video)
from ..errors import DataError
from ..files import atomic_path, staged_outputs
from .arguments import non_negative_float, positive_int
from .outputs import check_distinct, check_output_file

logger = logging.getLogger(__name__)

DEFAULT_SIZE = 256
#: The largest --size: a 4096x4096 frame is 48 MiB, more than any published model takes (256 or
#: 512) by far; larger sizes only upsample, and 100000 asked OpenCV for 28 GiB a frame.
MAX_SIZE = 4096
# A fixed crop this many times wider than its subject's own crop is worth a word about --follow.
LOOSE_CROP = 1.5
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def crop_size(text: str) -> Optional[int]:
    """An argparse type: ``full`` (None: the crop's own resolution) or a size in pixels."""
    if text.strip().lower() == "full":
        return None
    try:
        size = positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a size in pixels or 'full', got {text!r}") from None
    if size > MAX_SIZE:
        raise argparse.ArgumentTypeError(f"{size} is above {MAX_SIZE} pixels (the published models take 256 or "
                                         f"512); 'full' keeps the crop at the input's resolution")
    return size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="an image or a video (any format fomm reads)")
    parser.add_argument("--out", type=Path, required=True,
                        help="the cropped image (.png, .jpg, ...) or video (.mp4, .mov, .mkv, .gif); a video "
                             "cut into several segments is written as OUT-1.mp4, OUT-2.mp4, ...")
    parser.add_argument("--subject", choices=SUBJECTS, default="face",
                        help="what to frame: a face (the vox models) or a whole body (the taichi models)")
    parser.add_argument("--detector", metavar="NAME",
                        help=f"detector: {', '.join(sorted(DETECTORS))}, or module:factory for your own "
                             f"(default: {DEFAULT_DETECTORS['face']} for faces, {DEFAULT_DETECTORS['body']} "
                             f"for bodies)")
    parser.add_argument("--size", type=crop_size, default=DEFAULT_SIZE, metavar="N|full",
                        help=f"side of the square output in pixels (at most {MAX_SIZE}), or 'full' for the crop "
                             f"at the input's resolution (default {DEFAULT_SIZE}, the published models' size)")
    parser.add_argument("--margin", type=non_negative_float, metavar="M",
                        help="room around the subject on each side, as a fraction of its size (default: "
                             + ", ".join(f"{value:g} for {name}s" for name, value in DEFAULT_MARGINS.items()) + ")")
    parser.add_argument("--min-frames", type=positive_int, default=10, metavar="N",
                        help="drop video segments shorter than N frames (default 10)")
    parser.add_argument("--follow", action="store_true",
                        help="move a crop of fixed size smoothly with the subject instead of one still crop "
                             "holding everything it does")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the segments and boxes as JSON and write nothing")


def run(args: argparse.Namespace) -> int:
    path = Path(args.input)
    if not path.exists():
        raise DataError(f"input not found: {path}")
    is_image = path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not is_animation(path)
    if not args.dry_run:
        check_output_file(args.out, IMAGE_SUFFIXES if is_image else VIDEO_OUTPUT_SUFFIXES, "--out")
        check_distinct([args.out], {"the input": path})
    name = args.detector or DEFAULT_DETECTORS[args.subject]
    detector = make_detector(name)
    subject = DETECTORS[name].subject if name in DETECTORS else args.subject
    margin = DEFAULT_MARGINS[subject] if args.margin is None else args.margin
    settings = {"input": str(path), "subject": subject, "detector": name, "margin": margin,
                "size": args.size if args.size is not None else "full"}
    if is_image:
        return _crop_image(args, path, detector, subject, margin, settings)
    return _crop_video(args, path, detector, subject, margin, settings)


def _crop_image(args: argparse.Namespace, path: Path, detector: SubjectDetector, subject: str, margin: float,
                settings: dict) -> int:
    image = read_source_image(path)
    found, box = subject_crop(image, detector, margin, what=str(path), subject=subject)
    plan = {**settings, "kind": "image", "height": image.shape[0], "width": image.shape[1],
            "found": found.pixels(), "box": box.pixels(), "out": str(args.out)}
    if args.dry_run:
        print(json.dumps(plan, indent=2))
        return 0
    cropped = crop_frame(image, box, None if args.size is None else (args.size, args.size))
    _write_image(args.out, cropped)
    print(f"wrote {args.out} ({cropped.shape[1]}x{cropped.shape[0]}): {subject} at {_format(found)}, "
          f"crop {_format(box)}")
    return 0


def _write_image(path: Path, image: np.ndarray) -> None:
    import imageio.v3 as iio

    with atomic_path(path, make_parents=False) as temporary:
        iio.imwrite(temporary, image, extension=path.suffix.lower())


def _crop_video(args: argparse.Namespace, path: Path, detector: SubjectDetector, subject: str, margin: float,
                settings: dict) -> int:
    info = video_info(path)
    fps = info.fps or DEFAULT_FPS
    with tqdm(total=info.num_frames, desc=f"finding the {subject}", unit="frame", disable=args.dry_run) as bar:
        detections = detect_video(iter_frames(path), detector, on_frame=lambda _: bar.update())
    segments = plan_segments(detections, margin, min_frames=args.min_frames, follow=args.follow)
    if not segments:
        raise DataError(_nothing_found(path, detections.boxes, subject, args.min_frames))
    left_out = left_out_frames(detections, segments)
    outputs = _segment_paths(Path(args.out), len(segments))
    plan = {**settings, "kind": "video", "height": info.height, "width": info.width, "fps": fps,
            "frames": detections.num_frames, "follow": args.follow, "min_frames": args.min_frames,
            "scene_starts": detections.scene_starts,
            "segments": [_describe(segment, fps, out, args.follow) for segment, out in zip(segments, outputs)],
            "left_out": [{"start": run.start, "stop": run.stop, "found_on": run.found} for run in left_out]}
    if args.dry_run:
        print(json.dumps(plan, indent=2))
        return 0
    check_distinct(outputs, {"the input": path})
    audio = path if info.has_audio else None
    with staged_outputs(outputs) as staged:  # every segment, or none of them
        for segment, out in zip(segments, outputs):
            _write_segment(path, segment, staged[out], args.size, fps, audio)
    for segment, out in zip(segments, outputs):
        print(f"wrote {out}: frames {segment.start}-{segment.stop - 1} ({len(segment) / fps:.1f} s), "
              f"{_crop_words(segment, subject, args.follow)}")
    print(_summary(detections.num_frames, len(outputs), left_out, fps, subject, args.min_frames))
    return 0


def _crop_words(segment: Segment, subject: str, follow: bool) -> str:
    height, width = segment.size
    if follow:
        return f"a {width}x{height} crop following the {subject}"
    words = f"crop {_format(segment.box)}"
    if segment.looseness >= LOOSE_CROP:
        words += (f" ({segment.looseness:.1f} times as wide as the {subject} needs, which moves across it: "
                  f"--follow keeps it framed)")
    return words


def _summary(num_frames: int, files: int, left_out: list[LeftOut], fps: float, subject: str,
             min_frames: int) -> str:
    """One line: how many frames the files keep, and each run of frames they leave out, and why."""
    kept = num_frames - sum(len(run) for run in left_out)
    line = f"kept {kept} of {num_frames} frames in {files} file{'s' if files > 1 else ''}"
    if not left_out:
        return line
    reasons = []
    for run in left_out:
        if run.found == 0:
            why = f"no {subject} found"
        else:
            why = (f"a {subject} found on {run.found} of them, too briefly or too rarely to be kept "
                   f"(see --min-frames, now {min_frames})")
        reasons.append(f"frames {run.start}-{run.stop - 1} ({len(run) / fps:.1f} s): {why}")
    return f"{line}; left out {'; '.join(reasons)}"


def _nothing_found(path: Path, boxes: list[list[Box]], subject: str, min_frames: int) -> str:
    seen = sum(1 for frame in boxes if frame)
    if seen == 0:
        return f"{path}: no {subject} found in any of its {len(boxes)} frames"
    return (f"{path}: a {subject} is found on {seen} of {len(boxes)} frames, but never on most frames of "
            f"{min_frames} in a row (lower --min-frames)")


def _segment_paths(out: Path, count: int) -> list[Path]:
    """OUT itself for one segment; OUT-1, OUT-2, ... (same suffix) for several."""
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{number}{out.suffix}") for number in range(1, count + 1)]


def _describe(segment: Segment, fps: float, out: Path, follow: bool) -> dict:
    described = {"start": segment.start, "stop": segment.stop, "start_time": round(segment.start / fps, 3),
                 "end_time": round(segment.stop / fps, 3), "subject": segment.subject.pixels(),
                 "box": segment.box.pixels(), "looseness": round(segment.looseness, 2), "out": str(out)}
    if follow:
        described["boxes"] = [box.pixels() for box in segment.boxes]
    return described


def _write_segment(path: Path, segment: Segment, out: Path, size: Optional[int], fps: float,
                   audio: Optional[Path]) -> None:
    shape = None if size is None else (size, size)
    audio = None if out.suffix.lower() == ".gif" else audio
    frames = segment.crops(iter_frames(path), shape)
    write_video(out, frames, fps=fps, audio_from=audio, audio_start=segment.start / fps)


def _format(box: Box) -> str:
    x0, y0, x1, y1 = box.pixels()
    return f"x {x0}-{x1}, y {y0}-{y1}"
