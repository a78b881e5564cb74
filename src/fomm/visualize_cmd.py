"""``fomm visualize``: one picture of everything the model computes for one driving frame.

Top row: the source and the chosen driving frame with their keypoints (coloured by index along the
config's ``visualizer_params.colormap``), the deformed source, the occlusion map, the prediction
and the motion masks composited in keypoint colours. Below: the driving frame's per-keypoint
heatmaps, then the K+1 motion masks (background first). When the keypoint detector has a graph
refiner (``model.kp_detector.graph``), edges whose learned adjacency exceeds
``graph_params.adjacency_threshold`` are drawn between keypoints (line width by weight) and the
adjacency matrix is shown as an image.

Drawn with matplotlib's Agg backend (no display needed) and written atomically: to a temporary
file beside the output, then renamed.
"""

from __future__ import annotations

import argparse
import math
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from .errors import UserError
from .models import FommModel

__all__ = ["FrameAnalysis", "analyse_frame", "motion_figure", "save_figure", "add_visualize_arguments",
           "run_visualize"]

OUTPUT_SUFFIXES = {".png", ".pdf", ".svg", ".jpg", ".jpeg"}


@dataclass
class FrameAnalysis:
    """What the model computes for one (source, driving frame) pair, on the CPU, batch removed.

    Images ``(3, H, W)`` in [0, 1]; keypoints ``(K, 2)`` in [-1, 1]; ``heatmaps`` ``(K, h, w)``
    (the driving frame's detector heatmaps); ``masks`` ``(K+1, h', w')`` (background first);
    ``occlusion`` ``(h', w')`` or None; ``adjacency`` ``(K, K)`` or None without a graph refiner.
    """

    source: Tensor
    driving: Tensor
    prediction: Tensor
    deformed: Optional[Tensor]
    kp_source: Tensor
    kp_driving: Tensor
    kp_used: Tensor
    heatmaps: Optional[Tensor]
    masks: Optional[Tensor]
    occlusion: Optional[Tensor]
    adjacency: Optional[Tensor] = None
    adjacency_threshold: float = 0.0


@torch.inference_mode()
def analyse_frame(model: FommModel, source: Tensor, driving: Tensor, initial: Optional[Tensor] = None,
                  relative: bool = True) -> FrameAnalysis:
    """Run the model on ``source`` and one ``driving`` frame (``(3, H, W)`` at the model's size).

    With ``relative`` the motion is taken relative to ``initial`` (the driving video's first
    frame; the driving frame itself when None), as ``fomm animate`` does; else absolute.
    """
    from .animate import Animator

    animator = Animator(model, relative=relative)
    prepared = animator.prepare_source(source)
    kp_initial = animator.detect((initial if initial is not None else driving)[None])
    step = animator.step(prepared, driving[None], kp_initial)
    output = step.output
    graph = getattr(model.kp_detector, "graph", None)
    adjacency = graph.adjacency().detach().cpu() if graph is not None else None
    graph_params = model.config.model_params.graph_params
    threshold = graph_params.adjacency_threshold if graph_params is not None else 0.0

    def first(value: Optional[Tensor]) -> Optional[Tensor]:
        return None if value is None else value[0].detach().float().cpu()

    occlusion = first(output.occlusion_map)
    return FrameAnalysis(
        source=prepared.image[0].cpu(), driving=driving.cpu(), prediction=first(output.prediction),
        deformed=first(output.deformed), kp_source=first(prepared.keypoints.value),
        kp_driving=first(step.kp_driving.value), kp_used=first(step.kp_used.value),
        heatmaps=first(step.kp_driving.heatmap), masks=first(output.mask),
        occlusion=None if occlusion is None else occlusion[0], adjacency=adjacency, adjacency_threshold=threshold)


def _image(tensor: Tensor) -> np.ndarray:
    return tensor.clamp(0, 1).permute(1, 2, 0).numpy()


def _pixels(kp: Tensor, height: int, width: int) -> np.ndarray:
    """Keypoints in [-1, 1] -> (col, row) pixel coordinates (pixel centres at integers)."""
    points = kp.numpy().astype(np.float64)
    return np.stack([(points[:, 0] + 1) / 2 * (width - 1), (points[:, 1] + 1) / 2 * (height - 1)], axis=1)


def _draw_keypoints(axis, image: Tensor, kp: Tensor, colors: np.ndarray, adjacency: Optional[Tensor],
                    threshold: float, title: str) -> None:
    height, width = image.shape[1:]
    axis.imshow(_image(image), interpolation="nearest")
    points = _pixels(kp, height, width)
    if adjacency is not None:
        weights = adjacency.numpy()
        strongest = max(float(weights.max()), 1e-12)
        for i in range(len(points)):
            for j in range(i + 1, len(points)):
                if weights[i, j] > threshold:
                    axis.plot(points[[i, j], 0], points[[i, j], 1], color="white", alpha=0.8,
                              linewidth=0.5 + 3.0 * weights[i, j] / strongest, solid_capstyle="round")
    marker = max(12.0, 2400.0 / max(height, 1))  # legible at 64 and 256 pixels alike
    axis.scatter(points[:, 0], points[:, 1], c=colors, s=marker, edgecolors="black", linewidths=0.6, zorder=3)
    axis.set_xlim(-0.5, width - 0.5)
    axis.set_ylim(height - 0.5, -0.5)
    _titled(axis, title)


def _titled(axis, title: str, color: str = "black") -> None:
    axis.set_title(title, fontsize=8, color=color)
    axis.set_xticks([])
    axis.set_yticks([])


def _mask_composite(masks: Tensor, colors: np.ndarray) -> np.ndarray:
    """``(K+1, h, w)`` softmax masks -> ``(h, w, 3)``: background grey, keypoint k in its colour."""
    palette = np.concatenate([np.full((1, 3), 0.5), colors], axis=0)
    return np.einsum("khw,kc->hwc", masks.numpy(), palette).clip(0, 1)


def motion_figure(analysis: FrameAnalysis, colormap: str = "gist_rainbow", frame_index: Optional[int] = None):
    """The matplotlib Figure described in the module docstring (Agg canvas)."""
    from matplotlib.figure import Figure

    from .visualize import keypoint_colors

    num_kp = analysis.kp_source.shape[0]
    colors = keypoint_colors(num_kp, colormap)
    top: list[str] = ["source", "driving", "deformed", "occlusion", "prediction", "masks"]
    if analysis.adjacency is not None:
        top.append("adjacency")
    columns = max(len(top), min(num_kp + 1, 11))
    heat_rows = math.ceil(num_kp / columns) if analysis.heatmaps is not None else 0
    mask_rows = math.ceil((num_kp + 1) / columns) if analysis.masks is not None else 0
    rows = 1 + heat_rows + mask_rows
    figure = Figure(figsize=(1.8 * columns, 1.95 * rows), dpi=100)
    grid = figure.add_gridspec(rows, columns, hspace=0.35, wspace=0.08)
    adjacency, threshold = analysis.adjacency, analysis.adjacency_threshold
    driving_title = "driving" if frame_index is None else f"driving #{frame_index}"

    for column, name in enumerate(top):
        axis = figure.add_subplot(grid[0, column])
        if name == "source":
            _draw_keypoints(axis, analysis.source, analysis.kp_source, colors, adjacency, threshold, "source")
        elif name == "driving":
            _draw_keypoints(axis, analysis.driving, analysis.kp_driving, colors, adjacency, threshold, driving_title)
        elif name == "prediction":
            _draw_keypoints(axis, analysis.prediction, analysis.kp_used, colors, None, threshold,
                            "prediction (kp used)")
        elif name == "deformed":
            _show(axis, None if analysis.deformed is None else _image(analysis.deformed), "deformed source")
        elif name == "occlusion":
            _show(axis, None if analysis.occlusion is None else analysis.occlusion.numpy(), "occlusion",
                  cmap="gray", vmin=0, vmax=1)
        elif name == "masks":
            _show(axis, None if analysis.masks is None else _mask_composite(analysis.masks, colors), "masks (all)")
        elif name == "adjacency" and adjacency is not None:
            shown = axis.imshow(adjacency.numpy(), cmap="viridis", interpolation="nearest")
            figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.04).ax.tick_params(labelsize=6)
            _titled(axis, f"adjacency (edges > {threshold:g})")
    for column in range(len(top), columns):
        figure.add_subplot(grid[0, column]).axis("off")

    if analysis.heatmaps is not None:
        for k in range(heat_rows * columns):
            axis = figure.add_subplot(grid[1 + k // columns, k % columns])
            if k >= num_kp:
                axis.axis("off")
                continue
            heatmap = analysis.heatmaps[k].numpy()
            axis.imshow(heatmap / max(float(heatmap.max()), 1e-12), cmap="magma", vmin=0, vmax=1,
                        interpolation="nearest")
            _titled(axis, f"heatmap {k}", color=colors[k])
    if analysis.masks is not None:
        for k in range(mask_rows * columns):
            axis = figure.add_subplot(grid[1 + heat_rows + k // columns, k % columns])
            if k > num_kp:
                axis.axis("off")
                continue
            axis.imshow(analysis.masks[k].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            _titled(axis, "mask bg" if k == 0 else f"mask {k - 1}", color="black" if k == 0 else colors[k - 1])
    return figure


def _show(axis, image: Optional[np.ndarray], title: str, **kwargs) -> None:
    if image is None:
        axis.text(0.5, 0.5, "n/a", ha="center", va="center", transform=axis.transAxes)
    else:
        axis.imshow(image, interpolation="nearest", **kwargs)
    _titled(axis, title)


def save_figure(figure, path: Path) -> Path:
    """Render ``figure`` to ``path`` atomically (a temporary sibling with the same suffix, then
    rename), so an interrupted run never leaves a truncated picture under the final name."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    temporary = path.with_name(f".{path.stem}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        figure.savefig(temporary, format=path.suffix.lstrip(".").lower().replace("jpg", "jpeg"),
                       bbox_inches="tight")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


# --------------------------------------------------------------------------------------------
# fomm visualize


def add_visualize_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="model checkpoint (ours or an original .pth.tar)")
    parser.add_argument("--config", type=Path, help="YAML config; required for original checkpoints")
    parser.add_argument("--source", type=Path, required=True, help="source image (or a video: its first frame)")
    parser.add_argument("--driving", type=Path, required=True, help="driving video")
    parser.add_argument("--frame", type=int, default=0, help="index of the driving frame to show (from 0)")
    parser.add_argument("--out", type=Path, default=Path("motion.png"), help="picture to write (.png, .pdf, .svg, .jpg)")
    motion = parser.add_mutually_exclusive_group()
    motion.add_argument("--relative", dest="relative", action="store_true", default=True,
                        help="motion relative to the first driving frame, as `fomm animate` (default)")
    motion.add_argument("--absolute", dest="relative", action="store_false",
                        help="use the driving keypoints as they are")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")


def _driving_frames(path: Path, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(first frame, frame ``index``) of a driving video as ``(H, W, 3)`` uint8."""
    from .data.video import read_frames_at, video_info

    if not path.exists():
        raise UserError(f"driving video not found: {path}")
    count = video_info(path).num_frames
    if index < 0 or index >= count:
        raise UserError(f"--frame {index} is out of range: {path} has {count} frames (0..{count - 1})")
    frames = read_frames_at(path, [0, index])
    return frames[0], frames[1]


def run_visualize(args: argparse.Namespace) -> int:
    from .animate import prepare_frames
    from .checkpoint import load_checkpoint
    from .commands import read_source_image
    from .device import resolve_device

    if args.out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UserError(f"--out must end in one of {', '.join(sorted(OUTPUT_SUFFIXES))}, got {args.out}")
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        raise UserError(str(error)) from None
    source_image = read_source_image(args.source)
    first, chosen = _driving_frames(args.driving, args.frame)
    model = load_checkpoint(args.checkpoint, config=args.config, device=device)
    height, width, _ = model.frame_shape
    source = prepare_frames(source_image, height, width)[0]
    driving = prepare_frames(np.stack([first, chosen]), height, width)
    analysis = analyse_frame(model, source, driving[1], initial=driving[0], relative=args.relative)
    figure = motion_figure(analysis, model.config.visualizer_params.colormap, frame_index=args.frame)
    save_figure(figure, args.out)
    print(f"wrote {args.out}")
    return 0
