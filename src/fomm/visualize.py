"""Pictures for humans: keypoints drawn on frames, the side-by-side animation panels, the training
visualisation grid, and the one-frame motion figure of ``fomm visualize``.

Images here are numpy ``(H, W, 3)`` float arrays in [0, 1] (or torch ``(3, H, W)`` tensors, which
are converted); keypoints are ``(K, 2)`` (x, y) in [-1, 1] with -1/1 at the corner pixel centres.
Figures use matplotlib's Agg backend (no display needed) and are written atomically.

The motion figure (:func:`motion_figure`): top row, the source and the chosen driving frame with
their keypoints (coloured by index along the config's ``visualizer_params.colormap``), the deformed
source, the occlusion map, the prediction and the motion masks composited in keypoint colours.
Below: the driving frame's per-keypoint heatmaps, then the K+1 motion masks (background first).
With a graph refiner (``model.kp_detector.graph``), edges whose learned adjacency exceeds
``graph_params.adjacency_threshold`` are drawn between keypoints (line width by weight) and the
adjacency matrix is shown as an image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from .animate import Animator
from .geometry import to_pixels
from .io import atomic_path
from .models import FommModel

__all__ = ["FrameAnalysis", "analyse_frame", "draw_keypoints", "keypoint_colors", "motion_figure", "save_figure",
           "side_by_side", "to_numpy_image", "training_grid"]


def to_numpy_image(image: Tensor | np.ndarray) -> np.ndarray:
    """``(3, H, W)`` / ``(1, H, W)`` tensor or ``(H, W[, C])`` array -> ``(H, W, 3)`` float in [0, 1]."""
    if isinstance(image, Tensor):
        array = image.detach().float().cpu().numpy()
        if array.ndim == 3:
            array = array.transpose(1, 2, 0)
    else:
        array = np.asarray(image, dtype=np.float32)
        if array.dtype == np.uint8 or array.max(initial=0) > 1.5:
            array = array / 255.0
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.clip(array.astype(np.float32), 0.0, 1.0)


def keypoint_colors(num_kp: int, colormap: str = "gist_rainbow") -> np.ndarray:
    """``(K, 3)`` RGB colours in [0, 1] spread over a matplotlib colormap."""
    from matplotlib import colormaps

    cmap = colormaps[colormap]
    return np.array([cmap(i / max(num_kp, 1))[:3] for i in range(num_kp)], dtype=np.float32)


def draw_keypoints(image: Tensor | np.ndarray, kp: Tensor | np.ndarray, colormap: str = "gist_rainbow",
                   kp_size: int = 5) -> np.ndarray:
    """``image`` with a filled disc of radius ``kp_size`` pixels at each keypoint, coloured by
    index along ``colormap``. Returns a new ``(H, W, 3)`` float array."""
    canvas = to_numpy_image(image).copy()
    points = kp.detach().float().cpu().numpy() if isinstance(kp, Tensor) else np.asarray(kp, dtype=np.float32)
    height, width = canvas.shape[:2]
    rows, cols = np.mgrid[0:height, 0:width]
    for (col, row), color in zip(to_pixels(points, width, height), keypoint_colors(len(points), colormap)):
        canvas[(rows - row) ** 2 + (cols - col) ** 2 <= kp_size ** 2] = color
    return canvas


def training_grid(source: Tensor, driving: Tensor, prediction: Tensor, kp_source: Optional[Tensor] = None,
                  kp_driving: Optional[Tensor] = None, deformed: Optional[Tensor] = None,
                  occlusion_map: Optional[Tensor] = None, colormap: str = "gist_rainbow", kp_size: int = 5,
                  max_rows: int = 4, draw_border: bool = False) -> np.ndarray:
    """One row per sample (up to ``max_rows``): source (with its keypoints), driving (with its
    keypoints), deformed source, occlusion map, prediction (with the driving keypoints).

    Tensors are batches ``(B, C, H, W)`` (occlusion ``(B, 1, h, w)`` is resized to ``H x W``),
    keypoints ``(B, K, 2)``. Returns an ``(rows*H, columns*W, 3)`` uint8 array (each panel two
    pixels larger with ``draw_border``).
    """
    height, width = source.shape[2:]
    rows = []
    for b in range(min(max_rows, source.shape[0])):
        columns: list[np.ndarray] = []
        columns.append(_with_kp(source[b], None if kp_source is None else kp_source[b], colormap, kp_size))
        columns.append(_with_kp(driving[b], None if kp_driving is None else kp_driving[b], colormap, kp_size))
        if deformed is not None:
            columns.append(to_numpy_image(deformed[b]))
        if occlusion_map is not None:
            occlusion = torch.nn.functional.interpolate(occlusion_map[b:b + 1].detach().float(),
                                                        size=(height, width), mode="bilinear", align_corners=False)
            columns.append(to_numpy_image(occlusion[0]))
        columns.append(_with_kp(prediction[b], None if kp_driving is None else kp_driving[b], colormap, kp_size))
        if draw_border:
            columns = [_with_border(column) for column in columns]
        rows.append(np.concatenate(columns, axis=1))
    grid = np.concatenate(rows, axis=0)
    return (grid * 255).round().astype(np.uint8)


def _with_kp(image: Tensor, kp: Optional[Tensor], colormap: str, kp_size: int) -> np.ndarray:
    if kp is None:
        return to_numpy_image(image)
    return draw_keypoints(image, kp, colormap, kp_size)


def side_by_side(animator: Animator, source: torch.Tensor, driving: torch.Tensor, result: torch.Tensor,
                 colormap: str = "gist_rainbow", draw_border: bool = False, kp_source: Optional[Tensor] = None,
                 kp_driving: Optional[Tensor] = None) -> np.ndarray:
    """Frames of source | driving | result, each with the keypoints detected on it, as
    ``(T, H, 3 W, 3)`` uint8 (``(T, H + 2, 3 (W + 2), 3)`` with ``draw_border``: a one-pixel white
    frame around each panel, the config's ``visualizer_params.draw_border``). Keypoints already
    detected, the source's ``(K, 2)`` and the driving frames' ``(T, K, 2)``, are not detected again
    (a stream of batches encodes its source once)."""
    # visualizer_params.kp_size is in pixels of the 256x256 published models: scale it.
    kp_size = max(1, round(animator.model.config.visualizer_params.kp_size * source.shape[-1] / 256))
    if kp_source is None:
        kp_source = animator.prepare_source(source).keypoints.value[0]
    if kp_driving is None:
        kp_driving = animator.detect(driving).value
    kp_result = animator.detect(result).value
    framed = _with_border if draw_border else (lambda panel: panel)
    source_panel = framed(draw_keypoints(source, kp_source, colormap, kp_size))
    panels = [np.concatenate([source_panel, framed(draw_keypoints(frame, kp, colormap, kp_size)),
                              framed(draw_keypoints(prediction, kp_out, colormap, kp_size))], axis=1)
              for frame, kp, prediction, kp_out in zip(driving, kp_driving, result, kp_result)]
    return (np.stack(panels) * 255).round().astype(np.uint8)


def _with_border(panel: np.ndarray) -> np.ndarray:
    return np.pad(panel, ((1, 1), (1, 1), (0, 0)), constant_values=1.0)


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
    animator = Animator(model, relative=relative)
    prepared = animator.prepare_source(source)
    kp_initial = animator.detect((initial if initial is not None else driving)[None])
    step = animator.step(prepared, driving[None], kp_initial)
    heatmap = model.kp_detector.detect(driving[None].to(animator.device)).heatmap
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
        heatmaps=first(heatmap), masks=first(output.mask),
        occlusion=None if occlusion is None else occlusion[0], adjacency=adjacency, adjacency_threshold=threshold)


def _image(tensor: Tensor) -> np.ndarray:
    return tensor.clamp(0, 1).permute(1, 2, 0).numpy()


def _draw_keypoints(axis, image: Tensor, kp: Tensor, colors: np.ndarray, adjacency: Optional[Tensor],
                    threshold: float, title: str) -> None:
    height, width = image.shape[1:]
    axis.imshow(_image(image), interpolation="nearest")
    points = to_pixels(kp.numpy(), width, height)
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
    """Render ``figure`` to ``path`` (format from the suffix) atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    FigureCanvasAgg(figure)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format=path.suffix.lstrip(".").lower().replace("jpg", "jpeg"), bbox_inches="tight")
    return path
