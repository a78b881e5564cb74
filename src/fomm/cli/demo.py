"""``fomm demo``: the bundled sample animated by the bundled model, every kind of output written."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from ..animate import Animator, prepare_frames, to_uint8
from ..assets import BUNDLED_CHECKPOINT, BUNDLED_DRIVING, BUNDLED_SOURCE
from ..checkpoint import load_checkpoint
from ..data.media import read_driving_video, read_source_image
from ..data.video import write_video
from ..device import resolve_device, set_threads
from ..errors import UserError
from ..visualize import analyse_frame, motion_figure, save_figure, side_by_side
from .arguments import positive_int
from .outputs import check_output_folder

DEFAULT_FPS = 25.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("fomm-demo"), help="output folder (default fomm-demo/)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")


def run(args: argparse.Namespace) -> int:
    for asset in (BUNDLED_CHECKPOINT, BUNDLED_SOURCE, BUNDLED_DRIVING):
        if not asset.is_file():
            raise UserError(f"bundled asset missing: {asset} (reinstall fomm)")
    out: Path = check_output_folder(args.out, "--out")
    set_threads(args.threads)
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

    out.mkdir(parents=True, exist_ok=True)
    frames = to_uint8(result)
    visualizer = model.config.visualizer_params
    written = {
        "animation": write_video(out / "result.mp4", frames, fps=fps),
        "side by side (source | driving | result, with keypoints)": write_video(
            out / "side_by_side.mp4", side_by_side(animator, source, driving, result, visualizer.colormap), fps=fps),
        "GIF": write_video(out / "result.gif", frames, fps=fps),
    }
    middle = len(driving) // 2
    analysis = analyse_frame(model, source.to(device), driving[middle].to(device), initial=driving[0].to(device))
    written["keypoints, heatmaps, masks and occlusion (one frame)"] = save_figure(
        motion_figure(analysis, visualizer.colormap, frame_index=middle), out / "keypoints.png")

    print(f"\nAnimated the bundled sample ({len(frames)} frames, {width}x{height}) with the bundled model:")
    for what, path in written.items():
        print(f"  {what:55s} {path}")
    print("\nNext:")
    print("  your own media:      fomm animate --source face.png --driving video.mp4 --out result.mp4")
    print("  a published model:   fomm animate --checkpoint vox-cpk.pth.tar --config vox-256 "
          "--source face.png --driving video.mp4")
    print("  train on your data:  fomm train --config vox-256 --log-dir runs/mine")
    print("  docs:                README.md and docs/ in the repository")
    return 0
