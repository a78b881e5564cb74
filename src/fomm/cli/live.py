"""``fomm live``: animate a source image with a camera (or any video or stream) in real time, shown
in a window, written to a file and/or sent to a virtual camera. Input frames the model has no
time for are dropped, never queued; the achieved rate and latency are printed at the end."""

from __future__ import annotations

import argparse
import math

import torch
from pathlib import Path

from ..animate import Animator
from ..app.live import (
    KEYS,
    fastest_live_animator,
    FrameReader,
    LiveAnimator,
    VideoFileSink,
    VirtualCameraSink,
    parse_input,
    run_live,
)
from ..app.window import open_window
from ..assets import BUNDLED_SOURCE
from ..data.media import read_source_image
from ..data.video import DEFAULT_FPS
from ..errors import UserError
from ..pipeline import CROPS
from .arguments import add_model_arguments, add_motion_arguments, load_model, motion_settings, positive_int
from .outputs import check_distinct, check_fps, check_output_file

OUT_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "keys in the window: " + "; ".join(f"{key}: {what}" for key, what in KEYS.items())
    add_model_arguments(parser)
    add_motion_arguments(parser)
    media = parser.add_argument_group("input and outputs")
    media.add_argument("--source", type=Path, nargs="+", default=[BUNDLED_SOURCE], metavar="IMAGE",
                       help="source image(s) to animate; n/p in the window switch between them "
                            "(default: the bundled sample)")
    media.add_argument("--input", default="0",
                       help="camera number (default 0), video file, or stream URL (rtsp://, http://...); "
                            "files are read at their own frame rate, as a camera delivers")
    media.add_argument("--out", type=Path, help="also write the animation to this video (.mp4, .mov, .mkv, .m4v): "
                       "one frame per input frame, a dropped one repeating the latest animation")
    media.add_argument("--fps", type=float, help="frame rate of --out and the virtual camera (default: the input's, "
                       "else 25)")
    media.add_argument("--virtual-camera", action="store_true",
                       help="send the animation to a virtual camera for video calls (needs pyvirtualcam)")
    media.add_argument("--no-window", action="store_true", help="show no window (headless)")
    media.add_argument("--crop", choices=CROPS, default="none",
                       help="fit frames to the model: none (whole frame, default), center, or around the "
                            "face/body found when the session starts or is re-anchored")
    media.add_argument("--display-size", type=positive_int, default=512, metavar="PIXELS",
                       help="height of the window's pictures and of the virtual camera (default 512)")
    media.add_argument("--result-only", action="store_true", help="start with the result alone in the window "
                       "(s toggles the input beside it)")
    media.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this many seconds")


def run(args: argparse.Namespace) -> int:
    if args.out is not None:
        check_output_file(args.out, OUT_SUFFIXES, "--out")
        check_distinct([args.out], inputs={"--input": Path(args.input), **{
            f"--source {path}": path for path in args.source}})
    check_fps(args.fps)
    if args.duration is not None and not (math.isfinite(args.duration) and args.duration > 0):
        raise UserError(f"--duration must be a positive number of seconds, got {args.duration:g}")
    if args.no_window and args.out is None and not args.virtual_camera:
        raise UserError("--no-window with neither --out nor --virtual-camera would animate to nowhere: "
                        "give --out FILE or --virtual-camera (or drop --no-window)")
    if args.virtual_camera:
        VirtualCameraSink.check_installed()
    source_spec = parse_input(args.input)
    sources = [read_source_image(path) for path in args.source]
    window = None if args.no_window else open_window("fomm live")
    try:
        model = load_model(args)
        settings = motion_settings(args, model)

        def build() -> LiveAnimator:
            animator = Animator.with_settings(model, settings, batch_size=1, precision=args.precision,
                                              backend=args.backend)
            return LiveAnimator(animator, sources, crop=args.crop)

        if args.threads is None and torch.get_num_threads() > 1:
            live, threads, timings = fastest_live_animator(build, [torch.get_num_threads(), 1])
            print("fomm live: threads " + ", ".join(f"{count}: {1000 * seconds:.0f} ms a frame"
                                                    for count, seconds in timings.items()) + f"; using {threads}")
        else:
            live = build()
        animator = live.animator
        reader = FrameReader(source_spec)
        fps = args.fps or reader.fps or DEFAULT_FPS
        camera = None
        if args.virtual_camera:
            width = round(live.width * args.display_size / live.height)
            camera = VirtualCameraSink(width, args.display_size, fps)
        sink = VideoFileSink(args.out, fps) if args.out is not None else None
        report = run_live(reader, live, window=window, file_sink=sink, camera=camera,
                          side_by_side=not args.result_only, display_height=args.display_size,
                          duration=args.duration)
    finally:
        if window is not None:
            window.close()
    engine = f" ({animator.engine.name})" if animator.engine is not None else ""
    print(f"fomm live: {report.summary()}{engine}")
    if sink is not None:
        print(f"fomm live: wrote {args.out} ({sink.frames_written} frames at {fps:g} fps)")
    return 0
