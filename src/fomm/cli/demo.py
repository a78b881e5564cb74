"""``fomm demo``: the bundled sample animated by the bundled model, every kind of output written."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from ..animate import Animator
from ..assets import BUNDLED_CHECKPOINT, BUNDLED_DRIVING, BUNDLED_SOURCE
from ..checkpoint import load_checkpoint
from ..data.media import read_source_image
from ..data.video import DEFAULT_FPS, video_info
from ..device import resolve_device, set_threads
from ..errors import UserError
from ..pipeline import Outputs, animate_to_files, frame_inputs
from ..visualize import SideBySide, analyse_frame, motion_figure, save_figure
from .arguments import thread_count
from .outputs import check_output_folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("fomm-demo"), help="output folder (default fomm-demo/)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--threads", type=thread_count, help="CPU threads for torch (default: torch's choice)")


def run(args: argparse.Namespace) -> int:
    for asset in (BUNDLED_CHECKPOINT, BUNDLED_SOURCE, BUNDLED_DRIVING):
        if not asset.is_file():
            raise UserError(f"bundled asset missing: {asset} (reinstall fomm)")
    out: Path = check_output_folder(args.out, "--out")
    set_threads(args.threads)
    model = load_checkpoint(BUNDLED_CHECKPOINT, device=resolve_device(args.device))
    height, width, _ = model.frame_shape
    source_image = read_source_image(BUNDLED_SOURCE)
    info = video_info(BUNDLED_DRIVING)
    source_framing, driving_framing = frame_inputs(source_image, BUNDLED_DRIVING, height, width)
    source = source_framing(source_image)[0]

    out.mkdir(parents=True, exist_ok=True)
    animator = Animator.with_settings(model, model.default_motion(), batch_size=16)  # as `fomm animate` runs it
    files = Outputs(result=out / "result.mp4", gif=out / "result.gif", side_by_side=out / "side_by_side.mp4",
                    fps=info.fps or DEFAULT_FPS, draw_side_by_side=SideBySide(model, source))
    middle = info.num_frames // 2
    with tqdm(total=info.num_frames, desc="animating", unit="frame") as progress:
        summary = animate_to_files(animator, source, BUNDLED_DRIVING, driving_framing, files, progress=progress.update,
                                   keep=[0, middle])
    first, batch = summary.kept[0], summary.kept[middle]
    analysis = analyse_frame(model, source, batch.driving[middle % animator.batch_size], initial=first.driving[0],
                             settings=animator.settings)
    figure = save_figure(motion_figure(analysis, model.config.visualizer_params.colormap, frame_index=middle),
                         out / "keypoints.png")
    written = {
        "animation": files.result,
        "side by side (source | driving | result, with keypoints)": files.side_by_side,
        "GIF": files.gif,
        "keypoints, heatmaps, masks and occlusion (one frame)": figure,
    }
    print(f"\nAnimated the bundled sample ({summary.frames} frames, {width}x{height}) with the bundled model:")
    for what, path in written.items():
        print(f"  {what:55s} {path}")
    print("\nNext:")
    print("  your own media:      fomm animate --source face.png --driving video.mp4 --out result.mp4")
    print("  a published model:   fomm animate --checkpoint vox-cpk.pth.tar --config vox-256 "
          "--source face.png --driving video.mp4   (docs/families.md: where to get them)")
    print("  train on your data:  fomm train --config vox-256 --log-dir runs/mine")
    print("  docs:                README.md and docs/ in the repository")
    return 0
