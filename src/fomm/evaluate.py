"""Metrics of the papers: video reconstruction quality and keypoint quality.

Video reconstruction (the paper's protocol, Sec. 4.1 of Siarohin et al. 2019): for every test
video, the first frame is the source and every frame is driving; the driving keypoints are used as
they are (absolute motion, as the original ``reconstruction.py`` did), so a perfect model
reproduces the video. On the reconstructed videos:

* **L1**: mean absolute difference between generated and driving pixels, in [0, 1] units,
  averaged over every pixel, channel and frame of every evaluated video (frames at the model's
  size).
* **AKD** (average keypoint distance): landmarks are detected by an external
  :class:`~fomm.landmarks.LandmarkDetector` on the generated and on the driving frame; AKD is the
  mean euclidean distance between the two, over (frame, landmark) pairs detected in both, in
  **pixels** of the evaluation frame (the model's frame size, printed with the value).
* **MKR** (missing keypoint rate): the share of (frame, landmark) pairs detected in the driving
  frame but not in the generated one.
* **AED** (average euclidean distance): mean L2 distance between identity embeddings
  (an :class:`EmbeddingNetwork`) of the generated and the driving frame. Without a re-id network
  (the papers used one trained on faces / people), :class:`ColorHistogramEmbedding` is used; its
  docstring says why it measures identity on the synthetic datasets.

Keypoint quality, where the dataset has ground truth (the synthetic datasets of
:mod:`fomm.data.synthetic`):

* **keypoint error**: a linear regression with bias, fit by least squares, from the model's
  ``K`` learned keypoints (``2K`` numbers per frame) to the ``J`` ground-truth keypoints, fit on
  train-split frames and applied to test-split frames (the protocol of Thewlis et al. / Jakab et
  al. for unsupervised landmarks); the mean distance to ground truth over visible ground-truth
  points, in **% of the image width**.
* **temporal jitter**: the error of the regressed tracks' frame-to-frame motion,
  ``mean ||(p_{t+1} - p_t) - (g_{t+1} - g_t)||`` over joints visible in both frames, in % of
  width (see :func:`temporal_jitter`).
* **flow EPE**: the end-point error of the model's dense ``deformation`` (source frame 0, driving
  frame ``t``, absolute keypoints, upsampled to the frame size) against the ground-truth backward
  flow, in **pixels** (see :func:`flow_end_point_error`).

Metrics that the dataset or the given detectors do not allow are reported as n/a with the reason.
``fomm evaluate`` prints them as a table and writes CSV and JSON; ``fomm reconstruct``
(:mod:`fomm.reconstruct`) runs the same pass and also writes the reconstructed videos.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import UserError
from .landmarks import LandmarkDetector, as_detections, landmark_error, synthetic_ground_truth
from .config import DatasetParams
from .models import FommModel

logger = logging.getLogger(__name__)

__all__ = [
    "EmbeddingNetwork",
    "ColorHistogramEmbedding",
    "Reconstruction",
    "reconstruct_video",
    "detect_keypoints",
    "resize_flow",
    "l1_error",
    "LandmarkComparison",
    "compare_landmarks",
    "embedding_distances",
    "KeypointRegression",
    "fit_keypoint_regression",
    "keypoint_error",
    "temporal_jitter",
    "flow_end_point_error",
    "VideoMetrics",
    "Metric",
    "EvaluationResult",
    "evaluate_dataset",
    "add_evaluate_arguments",
    "run_evaluate",
]


# --------------------------------------------------------------------------------------------
# identity embeddings


@runtime_checkable
class EmbeddingNetwork(Protocol):
    """Anything mapping frames ``(T, 3, H, W)`` float in [0, 1] to embeddings ``(T, D)`` (a tensor
    or numpy array) whose euclidean distance measures a difference of identity."""

    def __call__(self, frames: Tensor) -> Tensor | np.ndarray: ...


class ColorHistogramEmbedding:
    """Joint RGB histogram with ``bins`` levels per channel, normalised to sum 1, square-rooted.

    Why this measures identity on the synthetic datasets: a sprite's identity *is* its appearance
    (the colours and textures of its parts and of its background) and a warped photo's is the
    photo; the motion between frames moves pixels around but, occlusions and borders aside, keeps
    the multiset of colours. So the histogram is nearly pose-invariant while being sensitive to
    what the AED of the papers targets: colour shifts, washed-out or blurred textures, parts
    rendered with another part's appearance. The square root makes the euclidean distance the
    Hellinger distance between the colour distributions (up to sqrt 2): bounded in [0, sqrt 2] and
    not dominated by the background's large bins. It needs no trained weights (the papers' re-id
    networks would have to be downloaded and only know faces or people).
    """

    def __init__(self, bins: int = 8) -> None:
        if bins < 1:
            raise ValueError(f"bins must be positive, got {bins}")
        self.bins = bins

    def __call__(self, frames: Tensor) -> Tensor:
        frames = frames.detach().float().cpu().clamp(0, 1)
        levels = (frames * self.bins).long().clamp_max(self.bins - 1)  # (T, 3, H, W)
        index = (levels[:, 0] * self.bins + levels[:, 1]) * self.bins + levels[:, 2]
        count = index.shape[1] * index.shape[2]
        histogram = torch.zeros(frames.shape[0], self.bins ** 3)
        histogram.scatter_add_(1, index.flatten(1), torch.ones(frames.shape[0], count))
        return (histogram / count).sqrt()


# --------------------------------------------------------------------------------------------
# reconstruction


@dataclass
class Reconstruction:
    """A video reconstructed from its first frame (on the CPU).

    ``prediction`` ``(T, 3, H, W)`` in [0, 1]; ``kp_driving`` ``(T, K, 2)`` the model's keypoints
    of each driving frame; ``deformation`` ``(T, h, w, 2)`` the dense sampling grid (driving pixel
    -> source position, (x, y) in [-1, 1]) at the dense-motion resolution, or None when not kept.
    """

    prediction: Tensor
    kp_driving: Tensor
    deformation: Optional[Tensor] = None


@torch.inference_mode()
def reconstruct_video(model: FommModel, frames: Tensor, batch_size: int = 8,
                      keep_deformation: bool = False) -> Reconstruction:
    """Reconstruct ``frames`` ``(T, 3, H, W)`` (at the model's size, in [0, 1]) from frame 0.

    Every frame drives with its own keypoints as they are (absolute motion): the original
    reconstruction protocol. Batches of ``batch_size`` driving frames share one encoded source.
    """
    from .animate import Animator

    animator = Animator(model, relative=False, batch_size=batch_size)
    predictions, keypoints, deformations = [], [], []
    kp_initial = animator.detect(frames[:1])  # unused by absolute motion, but Animator needs one
    for step in animator.steps(frames[0], frames.split(batch_size), kp_initial):
        predictions.append(step.prediction.float().cpu())
        keypoints.append(step.kp_driving.value.float().cpu())
        if keep_deformation and step.output.deformation is not None:
            deformations.append(step.output.deformation.float().cpu())
    deformation = torch.cat(deformations) if deformations else None
    return Reconstruction(torch.cat(predictions), torch.cat(keypoints), deformation)


@torch.inference_mode()
def detect_keypoints(model: FommModel, frames: Tensor, batch_size: int = 8) -> Tensor:
    """The model's keypoints ``(T, K, 2)`` of ``frames`` ``(T, 3, H, W)``, on the CPU."""
    device = model.device
    return torch.cat([model.kp_detector(batch.to(device)).value.float().cpu() for batch in frames.split(batch_size)])


# --------------------------------------------------------------------------------------------
# metric functions


def _numpy(array: Tensor | np.ndarray) -> np.ndarray:
    return array.detach().cpu().numpy() if isinstance(array, Tensor) else np.asarray(array)


def _pixel_scale(width: int, height: int) -> np.ndarray:
    """Multiply (dx, dy) in [-1, 1] units by this to get pixels (pixel-centre convention)."""
    return np.array([(width - 1) / 2, (height - 1) / 2], dtype=np.float64)


def l1_error(prediction: Tensor | np.ndarray, target: Tensor | np.ndarray) -> float:
    """Mean absolute difference of two image stacks of equal shape (values in [0, 1])."""
    prediction, target = _numpy(prediction).astype(np.float64), _numpy(target).astype(np.float64)
    if prediction.shape != target.shape:
        raise ValueError(f"L1 needs equal shapes, got {prediction.shape} and {target.shape}")
    return float(np.abs(prediction - target).mean())


@dataclass
class LandmarkComparison:
    """Landmarks of generated vs driving frames, as sums so that videos pool exactly.

    ``distance_sum``: summed distance in pixels over pairs detected in both; ``both``: their
    count; ``missing``: pairs detected in the driving frame but not in the generated one;
    ``driving_detected``: pairs detected in the driving frame.
    """

    distance_sum: float = 0.0
    both: int = 0
    missing: int = 0
    driving_detected: int = 0

    @property
    def akd(self) -> float:
        """Average keypoint distance in pixels (NaN when no landmark is detected in both)."""
        return self.distance_sum / self.both if self.both else float("nan")

    @property
    def mkr(self) -> float:
        """Missing keypoint rate in [0, 1] (NaN when the driving frames have no detections)."""
        return self.missing / self.driving_detected if self.driving_detected else float("nan")

    def __add__(self, other: "LandmarkComparison") -> "LandmarkComparison":
        return LandmarkComparison(self.distance_sum + other.distance_sum, self.both + other.both,
                                  self.missing + other.missing, self.driving_detected + other.driving_detected)


def compare_landmarks(detector: LandmarkDetector, generated: Tensor, driving: Tensor) -> LandmarkComparison:
    """Detect landmarks on ``generated`` and ``driving`` ``(T, 3, H, W)`` and compare them
    (distances in pixels of these frames)."""
    height, width = generated.shape[-2:]
    found_generated = as_detections(detector(generated))
    found_driving = as_detections(detector(driving))
    if found_generated.points.shape != found_driving.points.shape:
        raise ValueError("the landmark detector returned different shapes for generated and driving frames")
    distance = np.linalg.norm((found_generated.points - found_driving.points) * _pixel_scale(width, height), axis=-1)
    both = found_generated.detected & found_driving.detected
    missing = found_driving.detected & ~found_generated.detected
    return LandmarkComparison(float(distance[both].sum()), int(both.sum()), int(missing.sum()),
                              int(found_driving.detected.sum()))


def embedding_distances(embedding: EmbeddingNetwork, generated: Tensor, driving: Tensor) -> np.ndarray:
    """Per-frame euclidean distances ``(T,)`` between embeddings of generated and driving frames."""
    first, second = _numpy(embedding(generated)).astype(np.float64), _numpy(embedding(driving)).astype(np.float64)
    if first.shape != second.shape or first.ndim != 2 or len(first) != len(generated):
        raise ValueError(f"embedding network returned {first.shape} and {second.shape}; expected (T, D) each")
    return np.linalg.norm(first - second, axis=-1)


@dataclass
class KeypointRegression:
    """Linear map with bias from learned keypoints ``(N, K, 2)`` to ground truth ``(N, J, 2)``.

    ``weights`` ``(J, 2K + 1, 2)``: joint ``j`` is ``[x_1, y_1, ..., x_K, y_K, 1] @ weights[j]``.
    ``train_frames`` counts the frames it was fit on.
    """

    weights: np.ndarray
    train_frames: int

    def predict(self, learned: Tensor | np.ndarray) -> np.ndarray:
        features = _design_matrix(_numpy(learned))
        if features.shape[1] != self.weights.shape[1]:
            raise ValueError(f"regression was fit on {(self.weights.shape[1] - 1) // 2} keypoints, "
                             f"got {(features.shape[1] - 1) // 2}")
        return np.einsum("nd,jdc->njc", features, self.weights)


def _design_matrix(learned: np.ndarray) -> np.ndarray:
    flat = learned.reshape(len(learned), -1).astype(np.float64)
    return np.concatenate([flat, np.ones((len(flat), 1))], axis=1)


def fit_keypoint_regression(learned: Tensor | np.ndarray, truth: Tensor | np.ndarray,
                            visible: Optional[Tensor | np.ndarray] = None) -> KeypointRegression:
    """Least-squares fit (with bias) of each ground-truth joint on all learned keypoints.

    ``learned`` ``(N, K, 2)``, ``truth`` ``(N, J, 2)``, ``visible`` ``(N, J)`` bool (all True when
    None). Each joint is fit on the frames where it is visible (an occluded joint's position is not
    what the keypoints are asked to explain); a joint never visible falls back to all frames.
    With fewer than ``2K + 1`` frames the system is underdetermined and ``lstsq`` returns its
    minimum-norm solution.
    """
    features = _design_matrix(_numpy(learned))
    truth = _numpy(truth).astype(np.float64)
    visible = np.ones(truth.shape[:2], dtype=bool) if visible is None else _numpy(visible).astype(bool)
    if len(features) != len(truth) or visible.shape != truth.shape[:2]:
        raise ValueError(f"regression inputs disagree: learned {len(features)} frames, truth {truth.shape}, "
                         f"visibility {visible.shape}")
    weights = np.zeros((truth.shape[1], features.shape[1], 2))
    for joint in range(truth.shape[1]):
        rows = visible[:, joint] if visible[:, joint].any() else np.ones(len(truth), dtype=bool)
        weights[joint] = np.linalg.lstsq(features[rows], truth[rows, joint], rcond=None)[0]
    return KeypointRegression(weights, len(features))


def keypoint_error(predicted: Tensor | np.ndarray, truth: Tensor | np.ndarray, visible: Tensor | np.ndarray,
                   width: int, height: Optional[int] = None) -> float:
    """Mean distance over visible points, in % of the image width (see
    :func:`fomm.landmarks.landmark_error`); NaN when nothing is visible."""
    return landmark_error(_numpy(predicted), _numpy(truth), _numpy(visible), width, height)


def _jitter_terms(tracks: np.ndarray, truth: np.ndarray, visible: np.ndarray, width: int, height: int) -> np.ndarray:
    """Per (t, joint) velocity errors in pixels, for joints visible at t and t + 1."""
    velocity_error = (np.diff(tracks, axis=0) - np.diff(truth, axis=0)) * _pixel_scale(width, height)
    both = visible[1:] & visible[:-1]
    return np.linalg.norm(velocity_error, axis=-1)[both]


def temporal_jitter(tracks: Tensor | np.ndarray, truth: Tensor | np.ndarray, visible: Tensor | np.ndarray,
                    width: int, height: Optional[int] = None) -> float:
    """Temporal jitter of keypoint ``tracks`` ``(T, J, 2)`` against ground truth ``(T, J, 2)``.

    ``jitter = mean over (t, j) of ||(p_{t+1,j} - p_{t,j}) - (g_{t+1,j} - g_{t,j})||_2 / W * 100``

    for t = 0..T-2 and joints visible (``visible`` ``(T, J)``) in both frames t and t+1, with
    offsets in pixels (``dx (W-1)/2``, ``dy (H-1)/2``): the error of the tracks' frame-to-frame
    motion in % of the image width. A constant offset from the ground truth costs nothing; noise
    that makes a track shake costs up to twice its amplitude. In evaluation the tracks are the
    regressed ones (:class:`KeypointRegression`), so tracks equal to the ground truth up to an
    affine map have zero jitter. NaN when no joint is visible in two consecutive frames.
    """
    tracks, truth = _numpy(tracks).astype(np.float64), _numpy(truth).astype(np.float64)
    height = width if height is None else height
    terms = _jitter_terms(tracks, truth, _numpy(visible).astype(bool), width, height)
    return float(terms.mean() / width * 100) if terms.size else float("nan")


def flow_end_point_error(deformation: Tensor, flow: Tensor | np.ndarray, skip_first: bool = True) -> np.ndarray:
    """Per-frame end-point error in pixels of a dense ``deformation`` against ground-truth ``flow``.

    ``deformation`` ``(T, h, w, 2)`` (the model's sampling grid: driving pixel -> source position,
    (x, y) in [-1, 1]) is upsampled to the flow's ``(T, H, W, 2)`` as the generator does
    (bilinear, :func:`fomm.geometry.resize_grid`). Both map a pixel of frame t to a position in
    frame 0, so the EPE is ``||d - g||`` with offsets in pixels of the ``H x W`` frame, averaged
    over the pixels whose ground-truth position lies inside frame 0 (elsewhere frame t shows
    content frame 0 does not have, which no model can recover). Returns ``(T - 1,)`` errors for
    frames 1..T-1 with ``skip_first`` (frame 0 is the source itself), else ``(T,)``; NaN for a
    frame with no valid pixel.
    """
    from .geometry import resize_grid

    flow = torch.as_tensor(_numpy(flow), dtype=torch.float32)
    if deformation.shape[0] != flow.shape[0]:
        raise ValueError(f"deformation has {deformation.shape[0]} frames, flow {flow.shape[0]}")
    height, width = flow.shape[1:3]
    grid = resize_grid(deformation.float().cpu(), height, width)
    scale = torch.tensor([(width - 1) / 2, (height - 1) / 2])
    error = ((grid - flow) * scale).norm(dim=-1)
    valid = (flow.abs() <= 1).all(dim=-1)
    sums, counts = (error * valid).sum(dim=(1, 2)), valid.sum(dim=(1, 2))
    per_frame = torch.where(counts > 0, sums / counts.clamp_min(1), torch.full_like(sums, float("nan")))
    result = per_frame.numpy().astype(np.float64)
    return result[1:] if skip_first else result


def resize_flow(flow: np.ndarray, height: int, width: int) -> Tensor:
    """Ground-truth flow ``(T, H0, W0, 2)`` resampled to ``(T, height, width, 2)``.

    Values are normalised positions, so they stay as they are; the field is resampled at the new
    pixel centres (``align_corners=True``, the pixel-centre convention of the flow).
    """
    tensor = torch.as_tensor(np.asarray(flow, dtype=np.float32))
    if tensor.shape[1:3] == (height, width):
        return tensor
    resized = F.interpolate(tensor.permute(0, 3, 1, 2), size=(height, width), mode="bilinear", align_corners=True)
    return resized.permute(0, 2, 3, 1).contiguous()


# --------------------------------------------------------------------------------------------
# results


@dataclass
class VideoMetrics:
    """Metrics of one test video (None where not computed). Units as in the module docstring:
    ``l1`` [0, 1]; ``akd_px`` pixels; ``mkr`` [0, 1]; ``aed`` embedding units; ``keypoint_error``
    and ``jitter`` % of width; ``flow_epe_px`` pixels."""

    name: str
    frames: int
    l1: float
    akd_px: Optional[float] = None
    mkr: Optional[float] = None
    aed: Optional[float] = None
    keypoint_error: Optional[float] = None
    jitter: Optional[float] = None
    flow_epe_px: Optional[float] = None


@dataclass
class Metric:
    """One row of the results table: ``value`` None means n/a, with the reason in ``note``."""

    name: str
    value: Optional[float]
    unit: str
    description: str
    note: str = ""

    def formatted(self) -> str:
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return "n/a"
        return f"{self.value:.4f}" if abs(self.value) < 100 else f"{self.value:.1f}"


@dataclass
class EvaluationResult:
    """Pooled metrics (``metrics``, one row each), per-video metrics and the run's settings."""

    metrics: list[Metric]
    videos: list[VideoMetrics]
    settings: dict = field(default_factory=dict)

    def metric(self, name: str) -> Metric:
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(name)

    def value(self, name: str) -> Optional[float]:
        return self.metric(name).value

    def table(self) -> str:
        """The metrics as an aligned text table."""
        rows = [("metric", "value", "unit", "note")]
        rows += [(m.name, m.formatted(), m.unit, m.note) for m in self.metrics]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = ["  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)).rstrip()
                 for row in rows]
        lines.insert(1, "-" * max(len(line) for line in lines))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        def clean(value):
            return None if isinstance(value, float) and math.isnan(value) else value

        return {
            "metrics": {m.name: {"value": clean(m.value), "unit": m.unit, "description": m.description,
                                 "note": m.note} for m in self.metrics},
            "videos": [{key: clean(value) for key, value in asdict(video).items()} for video in self.videos],
            "settings": self.settings,
        }

    def metrics_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["metric", "value", "unit", "description", "note"])
        for m in self.metrics:
            value = "" if m.formatted() == "n/a" else repr(float(m.value))
            writer.writerow([m.name, value, m.unit, m.description, m.note])
        return buffer.getvalue()

    def videos_csv(self) -> str:
        buffer = io.StringIO()
        names = list(VideoMetrics.__dataclass_fields__)
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        for video in self.videos:
            row = []
            for name in names:
                value = getattr(video, name)
                row.append("" if value is None or (isinstance(value, float) and math.isnan(value)) else value)
            writer.writerow(row)
        return buffer.getvalue()

    def write(self, out_dir: Optional[Path] = None, csv_path: Optional[Path] = None,
              json_path: Optional[Path] = None) -> list[Path]:
        """Write ``metrics.csv``, ``per_video.csv`` and ``metrics.json`` into ``out_dir`` and/or the
        given paths, each atomically. Returns the paths written."""
        written = []
        if out_dir is not None:
            written += [write_text_atomic(out_dir / "metrics.csv", self.metrics_csv()),
                        write_text_atomic(out_dir / "per_video.csv", self.videos_csv()),
                        write_text_atomic(out_dir / "metrics.json", json.dumps(self.to_dict(), indent=2) + "\n")]
        if csv_path is not None:
            written.append(write_text_atomic(csv_path, self.metrics_csv()))
        if json_path is not None:
            written.append(write_text_atomic(json_path, json.dumps(self.to_dict(), indent=2) + "\n"))
        return written


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


# --------------------------------------------------------------------------------------------
# the dataset pass


class _Mean:
    """Running mean of pooled terms (sum and count), NaN when empty."""

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, values: np.ndarray | float) -> Optional[float]:
        """Add the finite ``values``; returns their own mean (None when there are none)."""
        values = np.asarray(values, dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        self.total += float(values.sum())
        self.count += int(values.size)
        return float(values.mean()) if values.size else None

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else float("nan")


@dataclass
class _Split:
    """Video paths of one split of a dataset, in the dataset's order."""

    folder: Path
    paths: list[Path]


def dataset_split(root: Path, frame_shape: Sequence[int], split: str,
                  params: Optional[DatasetParams] = None) -> _Split:
    """The ``split`` ('train' or 'test') videos of ``root`` as :class:`~fomm.data.FramesDataset`
    sees them: ``train/`` and ``test/`` folders, or the seeded split of a flat folder (seed,
    test fraction and ``id_sampling`` from ``params``, the model config's ``dataset_params``,
    when given).

    Raises DataError for a missing folder or a split without usable videos.
    """
    from .data.datasets import FramesDataset, list_videos, video_id

    update = {"root_dir": str(root), "frame_shape": tuple(frame_shape), "augmentation_params": None,
              "pairs_list": None, "cache_frames": False}
    params = params.model_copy(update=update) if params is not None else DatasetParams(**update)
    dataset = FramesDataset(params, is_train=split == "train", augment=False)
    folder = root / split if (root / "train").is_dir() else root
    names = list(dataset.videos)
    if split == "train" and params.id_sampling:  # training datasets list identities, not videos
        ids = set(names)
        names = [path.name for path in list_videos(folder) if video_id(path.name) in ids]
    return _Split(folder, [folder / name for name in names])


def _read_frames(path: Path, frame_shape: Sequence[int]) -> Tensor:
    """All frames of a video resized to ``frame_shape``: ``(T, 3, H, W)`` float in [0, 1]."""
    from .data.video import read_video

    frames = read_video(path, tuple(frame_shape))
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0


def _has_ground_truth(paths: Sequence[Path]) -> bool:
    ground_truth_path, _ = synthetic_ground_truth()
    return bool(paths) and all(ground_truth_path(path).is_file() for path in paths)


OnVideo = Callable[[str, Path, Tensor, Reconstruction], object]


def evaluate_dataset(
    model: FommModel,
    dataset: str | Path,
    landmark_detector: Optional[LandmarkDetector] = None,
    embedding: Optional[EmbeddingNetwork] = None,
    num_videos: Optional[int] = None,
    batch_size: int = 8,
    max_train_videos: Optional[int] = 100,
    keypoint_metrics: bool = True,
    on_video: Optional[OnVideo] = None,
    progress: bool = False,
) -> EvaluationResult:
    """Reconstruct the test videos of ``dataset`` and compute every metric that it allows.

    Frames are resized to the model's frame size. ``landmark_detector`` enables AKD and MKR,
    ``embedding`` AED. With ground truth beside the videos (synthetic datasets) and
    ``keypoint_metrics``, the keypoint regression is fit on the learned keypoints of up to
    ``max_train_videos`` train videos (None: all) and the keypoint error, jitter and (with
    ground-truth flow) flow EPE are computed on the test videos. ``num_videos`` limits the test
    videos (the first ones, by name). ``on_video(name, path, frames, reconstruction)`` is called
    after each video (``fomm reconstruct`` writes it out there).

    Raises DataError for a missing dataset or one without test videos.
    """
    if num_videos is not None and num_videos < 1:
        raise UserError(f"--num-videos must be at least 1, got {num_videos}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    root = Path(dataset)
    frame_shape = model.frame_shape
    height, width = frame_shape[0], frame_shape[1]
    test = dataset_split(root, frame_shape, "test", model.config.dataset_params)
    paths = test.paths[:num_videos] if num_videos is not None else test.paths
    _, load_ground_truth = synthetic_ground_truth()

    regression: Optional[KeypointRegression] = None
    has_truth = keypoint_metrics and _has_ground_truth(paths)
    truth_note = "not requested" if not keypoint_metrics else "dataset has no ground-truth keypoints"
    regression_note = truth_note
    if has_truth:
        regression, regression_note = _fit_regression(model, root, batch_size, max_train_videos)

    totals = _Totals()
    rows: list[VideoMetrics] = []
    iterator: Sequence[Path] = paths
    if progress:
        from tqdm import tqdm

        iterator = tqdm(paths, desc="evaluating", unit="video")
    for path in iterator:
        frames = _read_frames(path, frame_shape)
        truth = load_ground_truth(path) if has_truth else None
        if truth is not None:
            _check_truth(path, truth.keypoints, len(frames))
        result = reconstruct_video(model, frames, batch_size,
                                   keep_deformation=truth is not None and truth.flow is not None)
        row = VideoMetrics(name=path.name, frames=len(frames), l1=l1_error(result.prediction, frames))
        totals.l1.add((result.prediction.double() - frames.double()).abs().mean(dim=(1, 2, 3)).numpy())
        if landmark_detector is not None:
            comparison = compare_landmarks(landmark_detector, result.prediction, frames)
            totals.landmarks = totals.landmarks + comparison
            row.akd_px, row.mkr = comparison.akd, comparison.mkr
        if embedding is not None:
            row.aed = totals.aed.add(embedding_distances(embedding, result.prediction, frames))
        if truth is not None:
            _ground_truth_metrics(row, totals, result, truth, regression, height, width)
        rows.append(row)
        if on_video is not None:
            on_video(path.name, path, frames, result)
    l1, aed, kp_error, jitter, flow_epe = totals.l1, totals.aed, totals.kp_error, totals.jitter, totals.flow_epe
    landmarks, has_flow = totals.landmarks, totals.flow_epe.count > 0

    size = f"{width}x{height}"
    landmark_note = "" if landmark_detector is not None else "no landmark detector given (--landmarks)"
    embedding_name = type(embedding).__name__ if embedding is not None else None
    metrics = [
        Metric("L1", l1.value, "[0,1]", "mean |generated - driving| per pixel and channel"),
        Metric("AKD", landmarks.akd if landmark_detector is not None else None, f"px @{size}",
               "average distance of landmarks detected on generated vs driving frames", landmark_note),
        Metric("MKR", landmarks.mkr if landmark_detector is not None else None, "fraction",
               "landmarks detected on the driving frame but missing on the generated one", landmark_note),
        Metric("AED", aed.value if embedding is not None else None, "embedding L2",
               f"distance of identity embeddings ({embedding_name or 'none'}) of generated vs driving",
               "" if embedding is not None else "no embedding network"),
        Metric("keypoint_error", kp_error.value if regression is not None else None, "% width",
               "linear regression learned->GT keypoints (fit on train, test frames, visible points)",
               "" if regression is not None else regression_note),
        Metric("jitter", jitter.value if regression is not None else None, "% width",
               "mean |(p[t+1]-p[t]) - (g[t+1]-g[t])| of regressed tracks, visible in both frames",
               "" if regression is not None else regression_note),
        Metric("flow_epe", flow_epe.value if has_flow else None, f"px @{size}",
               "end-point error of the dense deformation vs ground-truth backward flow (frames 1..T-1)",
               "" if has_flow else ("dataset has no ground-truth flow" if has_truth else truth_note)),
    ]
    settings = {"dataset": str(root), "test_videos": len(paths), "frames": int(sum(r.frames for r in rows)),
                "frame_size": [height, width], "num_kp": int(model.config.model_params.common_params.num_kp),
                "motion": "absolute (reconstruction protocol: source = frame 0)",
                "regression_train_frames": regression.train_frames if regression is not None else None,
                "embedding": embedding_name}
    return EvaluationResult(metrics, rows, settings)


@dataclass
class _Totals:
    """Pooled terms of every metric over the videos seen so far."""

    l1: "_Mean" = field(default_factory=lambda: _Mean())
    aed: "_Mean" = field(default_factory=lambda: _Mean())
    kp_error: "_Mean" = field(default_factory=lambda: _Mean())
    jitter: "_Mean" = field(default_factory=lambda: _Mean())
    flow_epe: "_Mean" = field(default_factory=lambda: _Mean())
    landmarks: LandmarkComparison = field(default_factory=LandmarkComparison)


def _ground_truth_metrics(row: VideoMetrics, totals: _Totals, result: Reconstruction, truth,
                          regression: Optional[KeypointRegression], height: int, width: int) -> None:
    """Keypoint error and jitter of the regressed tracks, and flow EPE, of one video (into ``row``
    and ``totals``). ``truth``: the video's ground truth (keypoints, visibility, optional flow)."""
    if regression is not None:
        tracks = regression.predict(result.kp_driving.numpy())
        visible = np.asarray(truth.visibility, dtype=bool)
        points = np.asarray(truth.keypoints, dtype=np.float64)
        distances = np.linalg.norm((tracks - points) * _pixel_scale(width, height), axis=-1)[visible]
        row.keypoint_error = totals.kp_error.add(distances / width * 100)
        row.jitter = totals.jitter.add(_jitter_terms(tracks, points, visible, width, height) / width * 100)
    if truth.flow is not None and result.deformation is not None:
        errors = flow_end_point_error(result.deformation, resize_flow(truth.flow, height, width))
        row.flow_epe_px = totals.flow_epe.add(errors)


def _check_truth(path: Path, keypoints: np.ndarray, frames: int) -> None:
    from .errors import DataError

    if len(keypoints) != frames:
        raise DataError(f"{path}: {frames} frames but ground truth for {len(keypoints)}")


def _fit_regression(model: FommModel, root: Path, batch_size: int,
                    max_train_videos: Optional[int]) -> tuple[Optional[KeypointRegression], str]:
    """Fit the learned -> ground-truth regression on train videos; (None, reason) when impossible."""
    from .errors import DataError

    _, load_ground_truth = synthetic_ground_truth()
    frame_shape = model.frame_shape
    try:
        train = dataset_split(root, model.frame_shape, "train", model.config.dataset_params)
    except DataError as error:
        return None, f"no train videos to fit the keypoint regression ({error})"
    paths = [path for path in train.paths if _has_ground_truth([path])][:max_train_videos]
    if not paths:
        return None, "train videos have no ground-truth keypoints"
    learned, points, visible = [], [], []
    for path in paths:
        frames = _read_frames(path, frame_shape)
        truth = load_ground_truth(path)
        _check_truth(path, truth.keypoints, len(frames))
        learned.append(detect_keypoints(model, frames, batch_size).numpy())
        points.append(np.asarray(truth.keypoints, dtype=np.float64))
        visible.append(np.asarray(truth.visibility, dtype=bool))
    if len({p.shape[1] for p in points}) != 1:
        raise DataError(f"{root}: train videos have different numbers of ground-truth keypoints")
    learned_all = np.concatenate(learned)
    if len(learned_all) < learned_all.shape[1] * 2 + 1:
        logger.warning("keypoint regression fit on %d frames, fewer than its %d parameters per coordinate",
                       len(learned_all), learned_all.shape[1] * 2 + 1)
    return fit_keypoint_regression(learned_all, np.concatenate(points), np.concatenate(visible)), ""


# --------------------------------------------------------------------------------------------
# fomm evaluate


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``fomm evaluate`` and ``fomm reconstruct``."""
    parser.add_argument("--checkpoint", type=Path, required=True, help="model checkpoint (ours or an original .pth.tar)")
    parser.add_argument("--config", type=Path, help="YAML config; required for original checkpoints")
    parser.add_argument("--dataset", type=Path, required=True,
                        help="dataset folder (train/ and test/, or a flat folder split by the config's seed)")
    parser.add_argument("--num-videos", type=int, help="evaluate only the first N test videos")
    parser.add_argument("--max-train-videos", type=int, default=100,
                        help="train videos used to fit the keypoint regression (ground-truth datasets)")
    parser.add_argument("--batch-size", type=int, default=8, help="driving frames per forward pass")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")


def load_model_for(args: argparse.Namespace) -> tuple[FommModel, torch.device]:
    """Resolve the device and load the checkpoint of ``args`` (errors as one-line user errors)."""
    from .checkpoint import load_checkpoint
    from .device import resolve_device

    try:
        device = resolve_device(args.device)
    except (ValueError, RuntimeError) as error:
        raise UserError(str(error)) from None
    if args.max_train_videos is not None and args.max_train_videos < 1:
        raise UserError(f"--max-train-videos must be at least 1, got {args.max_train_videos}")
    if args.num_videos is not None and args.num_videos < 1:
        raise UserError(f"--num-videos must be at least 1, got {args.num_videos}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not args.dataset.is_dir():
        raise UserError(f"dataset folder not found: {args.dataset}")
    return load_checkpoint(args.checkpoint, config=args.config, device=device), device


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--landmarks", type=Path,
                        help="landmark detector from `fomm train-landmarks` (enables AKD and MKR)")
    parser.add_argument("--embedding", choices=("color-histogram", "none"), default="color-histogram",
                        help="identity embedding for AED (default: colour histogram, no weights needed)")
    parser.add_argument("--out", type=Path, help="folder for metrics.csv, per_video.csv and metrics.json")
    parser.add_argument("--csv", type=Path, help="write the metrics table as CSV here")
    parser.add_argument("--json", type=Path, help="write all results as JSON here")
    parser.add_argument("--videos", type=Path, help="also write the reconstructed videos (mp4) into this folder")


def run_evaluate(args: argparse.Namespace) -> int:
    from .landmarks import load_landmark_detector

    model, device = load_model_for(args)
    detector = load_landmark_detector(args.landmarks, device) if args.landmarks is not None else None
    if detector is not None:
        _warn_on_kind_mismatch(detector.config.dataset_kind, args.dataset)
    embedding = ColorHistogramEmbedding() if args.embedding == "color-histogram" else None
    on_video = None
    if args.videos is not None:
        from .reconstruct import VideoWriter

        on_video = VideoWriter(args.videos)
    result = evaluate_dataset(model, args.dataset, landmark_detector=detector, embedding=embedding,
                              num_videos=args.num_videos, batch_size=args.batch_size,
                              max_train_videos=args.max_train_videos, on_video=on_video, progress=True)
    print(result.table())
    written = result.write(args.out, args.csv, args.json)
    if written:
        print("wrote " + ", ".join(str(path) for path in written))
    return 0


def _warn_on_kind_mismatch(detector_kind: Optional[str], dataset: Path) -> None:
    """A detector trained on sprites says nothing about warped photos: warn, as the numbers would
    look valid."""
    from .data.synthetic.writer import read_meta

    kind = read_meta(Path(dataset)).get("kind")
    if detector_kind and kind and kind != detector_kind:
        logger.warning("the landmark detector was trained on a '%s' dataset but %s is '%s': AKD and MKR "
                       "will not be meaningful", detector_kind, dataset, kind)
