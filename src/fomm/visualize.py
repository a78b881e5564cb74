"""Pictures for humans: a model's motion description drawn on frames, the side-by-side animation
panels, the training visualisation grid, and the one-frame motion figure of ``fomm visualize``,
for a model of any family.

Images here are numpy ``(H, W, 3)`` float arrays in [0, 1] (or torch ``(3, H, W)`` tensors, which
are converted); points are ``(N, 2)`` (x, y) in [-1, 1] with -1/1 at the corner pixel centres,
coloured along the config's ``visualizer_params.colormap`` in groups of the family's
``point_group_size`` (a TPS transform's five points share a colour), and regions (MRAA) are drawn
as the ellipses of their covariances. Figures use matplotlib's Agg backend (no display needed) and
are written atomically.

The motion figure (:func:`motion_figure`): top row, the source and the chosen driving frame with
their points, the deformed source, the occlusion map, the prediction (with the points it was
rendered from); below, one row per group of maps the family explains itself with (FOMM: the
driving frame's keypoint heatmaps and the K+1 motion masks, background first). With a keypoint
graph (FOMM's ``graph_params``), edges whose learned adjacency exceeds
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

from .animate import AnimatedBatch
from .bundle import TensorBundle
from .files import atomic_path
from .geometry import to_pixels
from .models import MotionModel, MotionSettings

__all__ = ["FrameAnalysis", "SideBySide", "analyse_frame", "draw_keypoints", "keypoint_colors", "motion_figure",
           "point_colors", "save_figure", "to_numpy_image", "training_grid"]


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


def point_colors(num_points: int, group_size: int = 1, colormap: str = "gist_rainbow") -> np.ndarray:
    """``(N, 3)`` colours: one per group of ``group_size`` consecutive points."""
    groups = keypoint_colors(-(-num_points // group_size), colormap)
    return np.repeat(groups, group_size, axis=0)[:num_points]


def draw_keypoints(image: Tensor | np.ndarray, kp: Tensor | np.ndarray, colormap: str = "gist_rainbow",
                   kp_size: int = 5, colors: Optional[np.ndarray] = None,
                   covariances: Optional[Tensor | np.ndarray] = None) -> np.ndarray:
    """``image`` with a filled disc of radius ``kp_size`` pixels at each point, coloured by index
    along ``colormap`` (or by ``colors`` ``(N, 3)``); with ``covariances`` ``(N, 2, 2)`` (in the
    [-1, 1] units of the points) each point also gets the ellipse of one standard deviation.
    Returns a new ``(H, W, 3)`` float array."""
    import cv2

    canvas = np.ascontiguousarray((to_numpy_image(image) * 255).round().astype(np.uint8))
    points = kp.detach().float().cpu().numpy() if isinstance(kp, Tensor) else np.asarray(kp, dtype=np.float32)
    height, width = canvas.shape[:2]
    colors = keypoint_colors(len(points), colormap) if colors is None else colors
    pixels = to_pixels(points, width, height)
    if covariances is not None:
        covariances = np.asarray(covariances.detach().float().cpu() if isinstance(covariances, Tensor)
                                 else covariances, dtype=np.float64)
        scale = np.array([(width - 1) / 2, (height - 1) / 2])
        for (col, row), covariance, color in zip(pixels, covariances, colors):
            in_pixels = covariance * np.outer(scale, scale)
            values, vectors = np.linalg.eigh(in_pixels)
            axes = tuple(int(round(v)) for v in np.sqrt(np.clip(values, 0, None)))
            angle = float(np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1])))
            cv2.ellipse(canvas, (int(round(col)), int(round(row))), (max(axes[1], 1), max(axes[0], 1)), angle,
                        0, 360, tuple(int(c * 255) for c in color), 1, cv2.LINE_AA)
    for (col, row), color in zip(pixels, colors):
        cv2.circle(canvas, (int(round(col)), int(round(row))), kp_size, tuple(int(c * 255) for c in color), -1,
                   cv2.LINE_AA)
    return canvas.astype(np.float32) / 255.0


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


class SideBySide:
    """The side-by-side panels of animated batches: source | driving | result, each with the
    motion description the model used on it (the source's, the driving frame's, and the one the
    result was rendered from), as ``(B, H, 3 W, 3)`` uint8 (``(B, H + 2, 3 (W + 2), 3)`` with
    ``draw_border``: a one-pixel white frame around each panel, the config's
    ``visualizer_params.draw_border``). Nothing is run again: everything comes with the batch."""

    def __init__(self, model: MotionModel, source: Tensor, source_motion: Optional[TensorBundle] = None,
                 colormap: Optional[str] = None, draw_border: Optional[bool] = None) -> None:
        visualizer = model.config.visualizer_params
        self.model = model
        self.source = source
        self.colormap = colormap or visualizer.colormap
        self.draw_border = visualizer.draw_border if draw_border is None else draw_border
        # visualizer_params.kp_size is in pixels of the 256x256 published models: scale it.
        self.kp_size = max(1, round(visualizer.kp_size * source.shape[-1] / 256))
        self._source_panel: Optional[np.ndarray] = None
        if source_motion is not None:
            self._source_panel = self._panel(source, source_motion)

    def _panel(self, image: Tensor, motion: TensorBundle, index: int = 0) -> np.ndarray:
        points = self.model.points(motion)[index]
        regions = self.model.regions(motion)
        colors = point_colors(len(points), self.model.point_group_size, self.colormap)
        panel = draw_keypoints(image, points, kp_size=self.kp_size, colors=colors,
                               covariances=None if regions is None else regions[index])
        return _with_border(panel) if self.draw_border else panel

    def __call__(self, batch: AnimatedBatch) -> np.ndarray:
        if self._source_panel is None:
            self._source_panel = self._panel(self.source, batch.source_motion)
        panels = [np.concatenate([self._source_panel, self._panel(frame, batch.driving_motion, i),
                                  self._panel(prediction, batch.rendered_motion, i)], axis=1)
                  for i, (frame, prediction) in enumerate(zip(batch.driving, batch.prediction))]
        return (np.stack(panels) * 255).round().astype(np.uint8)


def _with_border(panel: np.ndarray) -> np.ndarray:
    return np.pad(panel, ((1, 1), (1, 1), (0, 0)), constant_values=1.0)


@dataclass
class FrameAnalysis:
    """What the model computes for one (source, driving frame) pair, on the CPU, batch removed.

    Images ``(3, H, W)`` in [0, 1]; points ``(N, 2)`` in [-1, 1] (``*_regions`` ``(N, 2, 2)``
    covariances for region models, else None); ``maps``: named groups of maps ``(M, h, w)`` the
    family explains itself with (FOMM: ``heatmap`` of the driving frame and ``mask``, background
    first); ``occlusion`` ``(h', w')`` or None; ``adjacency`` ``(N, N)`` or None without a
    keypoint graph.
    """

    source: Tensor
    driving: Tensor
    prediction: Tensor
    deformed: Optional[Tensor]
    kp_source: Tensor
    kp_driving: Tensor
    kp_used: Tensor
    occlusion: Optional[Tensor]
    maps: dict[str, Tensor]
    group_size: int = 1
    regions_source: Optional[Tensor] = None
    regions_driving: Optional[Tensor] = None
    regions_used: Optional[Tensor] = None
    adjacency: Optional[Tensor] = None
    adjacency_threshold: float = 0.0


@torch.inference_mode()
def analyse_frame(model: MotionModel, source: Tensor, driving: Tensor, initial: Optional[Tensor] = None,
                  relative: bool = True, settings: Optional[MotionSettings] = None) -> FrameAnalysis:
    """Run the model's plain networks on ``source`` and one ``driving`` frame (``(3, H, W)`` at the
    model's size).

    With ``relative`` the motion is taken relative to ``initial`` (the driving video's reference
    frame; the driving frame itself when None), as ``fomm animate`` does; else absolute.
    ``settings`` (a :class:`MotionSettings`) overrides ``relative``.
    """
    model = model.eval()
    device = model.device
    settings = settings or MotionSettings(mode="relative" if relative else "absolute")
    source_image, driving_image = source[None].to(device), driving[None].to(device)
    source_motion = model.describe(source_image)
    driving_motion = model.describe(driving_image)
    initial_motion = model.describe((initial if initial is not None else driving)[None].to(device))
    used = model.transfer(source_motion, driving_motion, initial_motion, settings)
    output = model.render(model.encode_source(source_image), source_motion, used)

    def first(value: Optional[Tensor]) -> Optional[Tensor]:
        return None if value is None else value[0].detach().float().cpu()

    def regions(motion: TensorBundle) -> Optional[Tensor]:
        return first(model.regions(motion))

    occlusion = first(output.occlusion_map)
    links = model.point_links()
    return FrameAnalysis(
        source=source.float().cpu(), driving=driving.float().cpu(), prediction=first(output.prediction),
        deformed=first(output.deformed), kp_source=first(model.points(source_motion)),
        kp_driving=first(model.points(driving_motion)), kp_used=first(model.points(used)),
        occlusion=None if occlusion is None else occlusion[0],
        maps={name: first(maps) for name, maps in model.explain(driving_image, output).items()},
        group_size=model.point_group_size, regions_source=regions(source_motion),
        regions_driving=regions(driving_motion), regions_used=regions(used),
        adjacency=None if links is None else links[0].detach().float().cpu(),
        adjacency_threshold=0.0 if links is None else links[1])


def _image(tensor: Tensor) -> np.ndarray:
    return tensor.clamp(0, 1).permute(1, 2, 0).numpy()


def _draw_keypoints(axis, image: Tensor, kp: Tensor, colors: np.ndarray, adjacency: Optional[Tensor],
                    threshold: float, title: str, regions: Optional[Tensor] = None) -> None:
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
    if regions is not None:
        from matplotlib.patches import Ellipse

        scale = np.array([(width - 1) / 2, (height - 1) / 2])
        for (x, y), covariance, color in zip(points, regions.numpy().astype(np.float64), colors):
            values, vectors = np.linalg.eigh(covariance * np.outer(scale, scale))
            radii = np.sqrt(np.clip(values, 0, None))
            angle = float(np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1])))
            axis.add_patch(Ellipse((x, y), 2 * radii[1], 2 * radii[0], angle=angle, fill=False, color=color,
                                   linewidth=1.0))
    marker = max(12.0, 2400.0 / max(height, 1))  # legible at 64 and 256 pixels alike
    axis.scatter(points[:, 0], points[:, 1], c=colors, s=marker, edgecolors="black", linewidths=0.6, zorder=3)
    axis.set_xlim(-0.5, width - 0.5)
    axis.set_ylim(height - 0.5, -0.5)
    _titled(axis, title)


def _titled(axis, title: str, color: str = "black") -> None:
    axis.set_title(title, fontsize=8, color=color)
    axis.set_xticks([])
    axis.set_yticks([])


def _map_labels(count: int, num_points: int, group_size: int, colors: np.ndarray) -> list[tuple[str, object]]:
    """``(label, colour)`` of each of ``count`` maps: one per point, or one per group of points,
    with a background map first when there is one more."""
    owners = colors if count in (num_points, num_points + 1) else colors[::group_size]
    offset = max(count - len(owners), 0)
    labels: list[tuple[str, object]] = []
    for k in range(count):
        index = k - offset
        if index < 0:
            labels.append(("bg", "black"))
        else:
            labels.append((str(index), owners[index] if index < len(owners) else "black"))
    return labels


def motion_figure(analysis: FrameAnalysis, colormap: str = "gist_rainbow", frame_index: Optional[int] = None):
    """The matplotlib Figure described in the module docstring (Agg canvas)."""
    from matplotlib.figure import Figure

    num_points = analysis.kp_source.shape[0]
    colors = point_colors(num_points, analysis.group_size, colormap)
    top: list[str] = ["source", "driving", "deformed", "occlusion", "prediction"]
    if analysis.adjacency is not None:
        top.append("adjacency")
    widest = max([len(maps) for maps in analysis.maps.values()], default=0)
    columns = max(len(top), min(widest, 11))
    rows_of = {name: math.ceil(len(maps) / columns) for name, maps in analysis.maps.items()}
    rows = 1 + sum(rows_of.values())
    figure = Figure(figsize=(1.8 * columns, 1.95 * rows), dpi=100)
    grid = figure.add_gridspec(rows, columns, hspace=0.35, wspace=0.08)
    adjacency, threshold = analysis.adjacency, analysis.adjacency_threshold
    driving_title = "driving" if frame_index is None else f"driving #{frame_index}"

    for column, name in enumerate(top):
        axis = figure.add_subplot(grid[0, column])
        if name == "source":
            _draw_keypoints(axis, analysis.source, analysis.kp_source, colors, adjacency, threshold, "source",
                            analysis.regions_source)
        elif name == "driving":
            _draw_keypoints(axis, analysis.driving, analysis.kp_driving, colors, adjacency, threshold, driving_title,
                            analysis.regions_driving)
        elif name == "prediction":
            _draw_keypoints(axis, analysis.prediction, analysis.kp_used, colors, None, threshold,
                            "prediction (motion used)", analysis.regions_used)
        elif name == "deformed":
            _show(axis, None if analysis.deformed is None else _image(analysis.deformed), "deformed source")
        elif name == "occlusion":
            _show(axis, None if analysis.occlusion is None else analysis.occlusion.numpy(), "occlusion",
                  cmap="gray", vmin=0, vmax=1)
        elif name == "adjacency" and adjacency is not None:
            shown = axis.imshow(adjacency.numpy(), cmap="viridis", interpolation="nearest")
            figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.04).ax.tick_params(labelsize=6)
            _titled(axis, f"adjacency (edges > {threshold:g})")
    for column in range(len(top), columns):
        figure.add_subplot(grid[0, column]).axis("off")

    row = 1
    for name, maps in analysis.maps.items():
        labels = _map_labels(len(maps), num_points, analysis.group_size, colors)
        for k in range(rows_of[name] * columns):
            axis = figure.add_subplot(grid[row + k // columns, k % columns])
            if k >= len(maps):
                axis.axis("off")
                continue
            values = maps[k].numpy()
            peak = max(float(values.max()), 1e-12)
            axis.imshow(values / peak, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
            label, color = labels[k]
            _titled(axis, f"{name} {label}", color=color)
        row += rows_of[name]
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
