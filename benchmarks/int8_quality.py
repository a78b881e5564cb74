"""How close is int8 to fp32? PSNR of OpenVINO int8 frames against OpenVINO fp32 frames, and a picture.

int8 here is what ``--precision int8`` does: the exported graphs quantised by NNCF
(:mod:`fomm.backends.quantization`), calibrated on the source and the first 8 driving frames of
the clip being animated (the user's own frames); PSNR is measured on the clip's other frames.

Two clips, each animated by two models:

* a real face: the astronaut photograph shipped with scikit-image (Eileen Collins), cropped to
  her face, and a driving video made from it by smooth affine motion (a nod, a turn, a zoom);
* the bundled sample (sprites source and driving video).

Models: the vox-256 architecture (random weights, seed 0: no trained vox-256 checkpoint ships
with the project, so its figures measure quantisation of random filters, not of a face model),
and the bundled sprites model (trained; 64x64). ``--picture`` writes source, driving, fp32, int8
and the difference (x10) for a few frames of the face clip, for the models whose frames are not
flat (the random vox-256 weights produce a uniform grey, sigmoid(0), whatever the input).

    python benchmarks/int8_quality.py --threads 2 --picture docs/assets/int8-vs-fp32.png
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import fomm
from fomm.animate import Animator
from fomm.data.frames import fit_frames
from fomm.assets import BUNDLED_CHECKPOINT, BUNDLED_DRIVING, BUNDLED_SOURCE
from fomm.backends import MIN_PSNR_DB, create_engine, device_summary, psnr
from fomm.data.media import read_driving_video, read_source_image

CALIBRATION_FRAMES = 8


def astronaut_face(size: int) -> torch.Tensor:
    """The face of scikit-image's astronaut photograph, ``(3, size, size)`` in [0, 1]."""
    from skimage import data

    image = data.astronaut()[10:250, 130:370]  # the face and hair, square
    return fit_frames(image, size, size)[0]


def moving_face(face: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` frames of ``face`` ``(3, H, W)`` under a smooth affine motion: a small rotation
    (a tilt), a shift (a nod and a turn) and a zoom, each a slow sine; borders reflected."""
    t = torch.linspace(0, 2 * math.pi, count)
    angle = 0.12 * torch.sin(t)
    scale = 1 + 0.08 * torch.sin(2 * t)
    shift_x, shift_y = 0.10 * torch.sin(t + 1.0), 0.07 * torch.sin(1.5 * t)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1)
    grid = F.affine_grid(theta, [count, *face.shape], align_corners=False)
    return F.grid_sample(face.expand(count, -1, -1, -1), grid, padding_mode="reflection",
                         align_corners=False).clamp(0, 1)


def bundled_clip(size: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    source = fit_frames(read_source_image(BUNDLED_SOURCE), size, size)[0]
    return source, fit_frames(read_driving_video(BUNDLED_DRIVING)[0][:count], size, size)


def animate_both(model: fomm.FommModel, source: torch.Tensor, driving: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 and int8 (OpenVINO) frames for ``driving``, int8 calibrated on its first frames."""
    calibration = (source[None], driving[:CALIBRATION_FRAMES])
    fp32 = Animator(model, engine=create_engine(model, "openvino", "fp32"), batch_size=8).animate(source, driving)
    int8_engine = create_engine(model, "openvino", "int8", calibration=calibration)
    int8 = Animator(model, engine=int8_engine, batch_size=8).animate(source, driving)
    return fp32, int8


def picture(path: Path, source: torch.Tensor, driving: torch.Tensor, rows: dict[str, tuple[torch.Tensor, torch.Tensor]],
            frames: list[int]) -> None:
    """One block per model: columns are frames; rows driving, fp32, int8, |int8 - fp32| x 10."""
    from matplotlib.figure import Figure

    from fomm.visualize import save_figure

    figure = Figure(figsize=(2.0 * (len(frames) + 1), 2.1 * 4 * len(rows)))
    axes = figure.subplots(4 * len(rows), len(frames) + 1, squeeze=False)
    for block, (label, (fp32, int8)) in enumerate(rows.items()):
        size = fp32.shape[-1]
        source_at = F.interpolate(source[None], size=(size, size), mode="bilinear", antialias=True)[0]
        driving_at = F.interpolate(driving, size=(size, size), mode="bilinear", antialias=True)
        names = ["driving", "fp32", "int8", "|int8 - fp32| x 10"]
        for offset, name in enumerate(names):
            row = axes[4 * block + offset]
            if offset == 0:
                row[0].imshow(source_at.permute(1, 2, 0).clamp(0, 1).numpy())
                row[0].set_title(f"{label}\nsource", fontsize=8)
            else:  # the first column holds only the row's label
                for spine in row[0].spines.values():
                    spine.set_visible(False)
            row[0].set_ylabel(name, fontsize=8)
            for column, index in enumerate(frames, start=1):
                image = {0: driving_at[index], 1: fp32[index], 2: int8[index],
                         3: ((int8[index] - fp32[index]).abs() * 10)}[offset]
                row[column].imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
                if offset == 2:
                    row[column].set_title(f"{psnr(int8[index:index + 1], fp32[index:index + 1]):.1f} dB",
                                          fontsize=8)
                elif offset == 0:
                    row[column].set_title(f"frame {index}", fontsize=8)
        for axis in axes[4 * block:4 * block + 4].flat:
            axis.set_xticks([])
            axis.set_yticks([])
    figure.tight_layout()
    save_figure(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=24, help="driving frames per clip (the first 8 calibrate)")
    parser.add_argument("--picture", type=Path, help="write the int8-vs-fp32 picture of the face clip here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vox = fomm.build_model(fomm.load_config("vox-256")).eval()
    bundled = fomm.load_checkpoint(BUNDLED_CHECKPOINT)
    face = astronaut_face(256)
    face_driving = moving_face(face, args.frames)
    clips = {"real face (astronaut, affine motion)": (face, face_driving),
             "bundled sample": bundled_clip(256, args.frames)}
    print(f"Machine: {device_summary(torch.device('cpu'))}; ONEDNN_MAX_CPU_ISA="
          f"{os.environ.get('ONEDNN_MAX_CPU_ISA', '(unset)')}; {args.threads} threads")
    print(f"int8 calibrated on the source and driving frames 0-{CALIBRATION_FRAMES - 1}; PSNR against fp32 "
          f"(OpenVINO) on frames {CALIBRATION_FRAMES}-{args.frames - 1}; the auto threshold is {MIN_PSNR_DB:.0f} dB")
    print()
    print("| model | clip | PSNR dB (held-out frames) | worst frame dB | max abs diff | holds 40 dB |")
    print("|---|---|---|---|---|---|")
    face_rows = {}
    for model_name, model in (("vox-256 (random weights)", vox), ("bundled sprites (trained, 64x64)", bundled)):
        size = model.frame_shape[0]
        for clip_name, (source, driving) in clips.items():
            source_at = fit_frames(source, size, size)[0]
            driving_at = fit_frames(driving, size, size)
            fp32, int8 = animate_both(model, source_at, driving_at)
            held_fp32, held_int8 = fp32[CALIBRATION_FRAMES:], int8[CALIBRATION_FRAMES:]
            whole = psnr(held_int8, held_fp32)
            worst = min(psnr(a[None], b[None]) for a, b in zip(held_int8, held_fp32))
            difference = float((held_int8 - held_fp32).abs().max())
            print(f"| {model_name} | {clip_name} | {whole:.1f} | {worst:.1f} | {difference:.3f} | "
                  f"{'yes' if whole >= MIN_PSNR_DB else 'no'} |", flush=True)
            if clip_name.startswith("real face") and float(fp32.std()) > 0.01:
                face_rows[model_name] = (fp32, int8)  # random vox-256 weights give flat grey frames: left out
    if args.picture is not None:
        step = max(1, (args.frames - CALIBRATION_FRAMES) // 4)
        picture(args.picture, face, face_driving, face_rows,
                list(range(CALIBRATION_FRAMES, args.frames, step))[:4])
        print(f"\nwrote {args.picture}", file=sys.stderr)


if __name__ == "__main__":
    main()
