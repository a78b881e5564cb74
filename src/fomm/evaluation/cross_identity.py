"""Cross-identity evaluation: animating one figure with another's motion, against the exact truth.

Self-reconstruction (:mod:`fomm.evaluation.protocol`) drives a video's first frame with the same
video, so copying the source is nearly right. Here the source is the first frame of test video A
and the driving video is test video B, a different figure; the answer is the ground-truth video
of A moved by B that ``fomm make-dataset --cross-pairs N`` writes beside the test split
(:mod:`fomm.data.synthetic.cross_pairs`: relative animation; absolute animation has no ground
truth there). For every pair, at the model's frame size:

* **L1** against the truth over the pixels whose truth the source shows (``defined``), and
  **L1 moving** over the moving ones (``moving``: from the truth's motion, not its pixels).
* **repeat the source**: the same two figures for the source image repeated (no motion at all),
  the baseline every model must beat.
* **oracle**: the same animation with perfect driving motion, concretely the source animated by
  the truth video itself (the animation's own keypoints of the true frames; since the truth's
  first frame is the source, relative and absolute motion agree there). It is the
  self-reconstruction figure of the model on exactly these pixels, and what it misses (the
  **oracle gap**, ``L1_moving_oracle``) is the rendering's own error; what the animation misses
  beyond it is the cost of transferring another figure's motion.
* **transfer gap** (no model involved): the relative transfer applied to the ground-truth keypoints
  themselves, ``A(0) + B(t) - B(0)``, against the truth's keypoints, in pixels: how far the
  transfer rule of the paper lands from the truth even with perfect keypoints (the figures'
  proportions differ).
* **pose error** (with a landmark detector, where landmarks exist): landmarks detected on the
  animation against the truth's keypoints, in pixels; beside it the same for the oracle and for
  the truth frames themselves (the detector's own floor).
* **appearance**: the distance between identity embeddings of the animation and of the truth
  (per frame), for the animation, the repeated source and the oracle.

Totals pool every pixel (and every point, frame) of every pair, so a pair counts by its size.

    from fomm.evaluation.cross_identity import ModelAnimation, evaluate_cross_identity
    result = evaluate_cross_identity(ModelAnimation(model), "data/sprites-64", model.frame_shape)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from ..animate import Animator
from ..data.datasets import dataset_folder
from ..data.synthetic.writer import CrossPairFiles, list_cross_pairs, load_cross_truth, load_ground_truth, read_meta
from ..errors import DataError, UserError
from ..models import MotionModel
from .fid import FeatureNetwork, FeatureStatistics
from .metrics import (
    EmbeddingNetwork,
    LandmarkDetector,
    PooledMean,
    as_detections,
    embedding_distances,
    embedding_name,
    point_distances,
)
from .protocol import read_frames
from .results import EvaluationResult, Metric
from .statistics import bootstrap_ratio_interval

__all__ = ["Animation", "ModelAnimation", "PairData", "PairMetrics", "evaluate_cross_identity", "read_pair"]


@runtime_checkable
class Animation(Protocol):
    """Anything that animates a source image ``(3, H, W)`` with driving frames ``(T, 3, H, W)``
    (float in [0, 1] at the same size) into ``(T, 3, H, W)`` frames in [0, 1]: a model with its
    motion transfer (:class:`ModelAnimation`), or a baseline. One that also has a method
    ``oracle(source, truth)`` renders the oracle with it (see :class:`ModelAnimation`)."""

    def __call__(self, source: Tensor, driving: Tensor) -> Tensor: ...


class ModelAnimation:
    """A model of any family animating as :class:`~fomm.animate.Animator` does it: ``adapt_scale``
    and ``precision`` as the animator's. ``motion``: ``relative`` (the truth of the cross pairs is
    relative), ``learned`` (relative, corrected by a FOMM model's point transfer) or ``avd``; None:
    ``learned`` where the model has a point transfer (as ``fomm animate`` runs it), else
    ``relative``.

    :meth:`oracle` renders the truth video with plain relative motion even when ``motion`` is
    ``learned``: the truth is the source's own figure, so there is nothing for the correction to
    correct, and the oracle stays the model's self-reconstruction figure, the same denominator
    whichever transfer is measured."""

    def __init__(self, model: MotionModel, adapt_scale: bool = False, batch_size: int = 8,
                 precision: str = "fp32", motion: Optional[str] = None) -> None:
        if motion is None:
            motion = "learned" if "learned" in model.motion_modes() else "relative"
        if motion == "absolute":
            raise UserError("cross-identity animation is measured against relative ground truth: use relative, "
                            "learned or avd motion, not absolute")
        self.adapt_scale, self.motion = adapt_scale, motion
        self.animator = Animator(model, motion=motion, adapt_scale=adapt_scale, batch_size=batch_size,
                                 precision=precision)
        self.oracle_animator = self.animator if motion != "learned" else Animator(
            model, motion="relative", adapt_scale=adapt_scale, batch_size=batch_size, precision=precision)

    def __call__(self, source: Tensor, driving: Tensor) -> Tensor:
        return self.animator.animate(source, driving).float().clamp(0, 1)

    def oracle(self, source: Tensor, truth: Tensor) -> Tensor:
        """The source animated by the truth video (see the class docstring)."""
        return self.oracle_animator.animate(source, truth).float().clamp(0, 1)


@dataclass
class PairMetrics:
    """The figures of one cross pair (None where not computed; units as the table's): L1 in
    [0, 1] units, ``*_px`` pixels of the model's frame, appearance in embedding units."""

    name: str
    frames: int
    moving_fraction: float
    l1: float
    l1_moving: Optional[float]
    repeat_l1: float
    repeat_l1_moving: Optional[float]
    oracle_l1: float
    oracle_l1_moving: Optional[float]
    transfer_gap_px: Optional[float] = None
    pose_error_px: Optional[float] = None
    oracle_pose_error_px: Optional[float] = None
    truth_pose_error_px: Optional[float] = None
    appearance: Optional[float] = None
    repeat_appearance: Optional[float] = None
    oracle_appearance: Optional[float] = None


@dataclass
class _Totals:
    """Pooled terms of every figure, over the pairs seen so far (keys as :class:`PairMetrics`')."""

    terms: dict[str, PooledMean] = field(default_factory=dict)
    #: Each pair's summed terms per key, in order: what the ratios' intervals resample.
    pair_sums: dict[str, list[float]] = field(default_factory=dict)
    #: Each pair's source and driving video, in the same order: the units the intervals resample.
    pair_videos: list[tuple[str, str]] = field(default_factory=list)
    fid_animated: FeatureStatistics = field(default_factory=FeatureStatistics)
    fid_truth: FeatureStatistics = field(default_factory=FeatureStatistics)

    def add(self, key: str, values: np.ndarray | Tensor) -> Optional[float]:
        pooled = self.terms.setdefault(key, PooledMean())
        before = pooled.total
        mean = pooled.add(values)
        self.pair_sums.setdefault(key, []).append(pooled.total - before)
        return mean

    def ratio_interval(self, numerator: str, denominator: str) -> Optional[tuple[float, float]]:
        """95 % bootstrap interval of the pooled ratio of two keys, the videos resampled (a pair
        counts as often as its source and its driving video were both drawn: pairs that share a
        video are not independent)."""
        if numerator not in self.pair_sums or denominator not in self.pair_sums:
            return None
        return bootstrap_ratio_interval(self.pair_sums[numerator], self.pair_sums[denominator],
                                        clusters=self.pair_videos)

    def value(self, key: str) -> Optional[float]:
        pooled = self.terms.get(key)
        return pooled.value if pooled is not None and pooled.count else None


# --------------------------------------------------------------------------------------------
# one pair


@dataclass
class PairData:
    """A pair read at the model's frame size: frames ``(T, 3, H, W)`` in [0, 1], masks
    ``(T, H, W)`` bool, keypoints ``(T, J, 2)`` in [-1, 1] with visibility ``(T, J)``."""

    source: Tensor
    driving: Tensor
    truth: Tensor
    defined: Tensor
    moving: Tensor
    keypoints: np.ndarray
    visibility: np.ndarray
    source_keypoints: np.ndarray
    driving_keypoints: np.ndarray


def _resize_mask(mask: np.ndarray, height: int, width: int, every: bool) -> Tensor:
    """A ``(T, h, w)`` bool mask at ``height x width``: a pixel is in it when any (``every``
    False) or all (``every`` True) of the area it covers is."""
    tensor = torch.from_numpy(mask).float()[:, None]
    if tuple(mask.shape[1:]) != (height, width):
        tensor = F.interpolate(tensor, size=(height, width), mode="area")
    return (tensor[:, 0] > 1 - 1e-6) if every else (tensor[:, 0] > 1e-6)


def read_pair(pair: CrossPairFiles, frame_shape: Sequence[int]) -> PairData:
    """One cross pair's videos, masks and keypoints at ``frame_shape`` ``(H, W, C)``. Raises
    DataError when their frame counts differ."""
    truth = read_frames(pair.truth, frame_shape)
    source = read_frames(pair.source, frame_shape)
    driving = read_frames(pair.driving, frame_shape)
    arrays = load_cross_truth(pair.arrays)
    frames = len(truth)
    if len(driving) != frames or len(arrays.keypoints) != frames or len(source) < 1:
        raise DataError(f"{pair.truth}: {frames} truth frames, {len(driving)} driving frames and "
                        f"{len(arrays.keypoints)} frames of ground truth do not match")
    height, width = frame_shape[0], frame_shape[1]
    source_truth, driving_truth = load_ground_truth(pair.source), load_ground_truth(pair.driving)
    return PairData(source[0], driving, truth, _resize_mask(arrays.defined, height, width, every=True),
                    _resize_mask(arrays.moving, height, width, every=False),
                    arrays.keypoints.astype(np.float64), arrays.visibility,
                    source_truth.keypoints.astype(np.float64), driving_truth.keypoints[:frames].astype(np.float64))


def _abs_errors(frames: Tensor, truth: Tensor, mask: Tensor) -> Tensor:
    """``|frames - truth|`` at every channel of the pixels in ``mask`` ``(T, H, W)``, flat."""
    error = (frames.double() - truth.double()).abs()  # (T, 3, H, W)
    return error.permute(0, 2, 3, 1)[mask].ravel()


def _transfer_gap(data: PairData, width: int, height: int) -> np.ndarray:
    """Distances in pixels between the relative transfer of the ground-truth keypoints,
    ``A(0) + B(t) - B(0)``, and the truth's keypoints, at the truth's visible points."""
    if data.source_keypoints.shape[1:] != data.keypoints.shape[1:]:
        return np.zeros(0)
    transferred = data.source_keypoints[:1] + data.driving_keypoints - data.driving_keypoints[:1]
    return point_distances(transferred, data.keypoints, data.visibility, width, height)


def _pose_errors(detector: LandmarkDetector, frames: Tensor, data: PairData, width: int, height: int
                 ) -> np.ndarray:
    """Distances in pixels between landmarks detected on ``frames`` and the truth's keypoints,
    where the truth's point is visible and the detector found it (empty when the detector's
    landmarks are not the dataset's keypoints)."""
    found = as_detections(detector(frames))
    if found.points.shape != data.keypoints.shape:
        return np.zeros(0)
    return point_distances(found.points, data.keypoints, data.visibility & found.detected, width, height)


def _evaluate_pair(name: str, data: PairData, animate: Animation, totals: _Totals,
                   detector: Optional[LandmarkDetector], embedding: Optional[EmbeddingNetwork],
                   feature_network: Optional[FeatureNetwork], batch_size: int) -> tuple[PairMetrics, Tensor]:
    """Animate one pair, its oracle and its baseline; add their terms to ``totals``."""
    height, width = data.truth.shape[-2:]
    animated = animate(data.source, data.driving).cpu().float()
    oracle = getattr(animate, "oracle", animate)(data.source, data.truth).cpu().float()
    repeated = data.source[None].expand_as(data.truth)
    for frames, what in ((animated, "animation"), (oracle, "oracle")):
        if frames.shape != data.truth.shape:
            raise UserError(f"the {what} of {name} has shape {tuple(frames.shape)}, expected {tuple(data.truth.shape)}")
    moving = data.moving & data.defined
    figures: dict[str, Optional[float]] = {}
    for prefix, frames in (("", animated), ("repeat_", repeated), ("oracle_", oracle)):
        figures[f"{prefix}l1"] = totals.add(f"{prefix}l1", _abs_errors(frames, data.truth, data.defined))
        figures[f"{prefix}l1_moving"] = totals.add(f"{prefix}l1_moving", _abs_errors(frames, data.truth, moving))
    figures["transfer_gap_px"] = totals.add("transfer_gap_px", _transfer_gap(data, width, height))
    if detector is not None:
        for prefix, frames in (("", animated), ("oracle_", oracle), ("truth_", data.truth)):
            key = f"{prefix}pose_error_px"
            figures[key] = totals.add(key, _pose_errors(detector, frames, data, width, height))
    if embedding is not None:
        for prefix, frames in (("", animated), ("repeat_", repeated), ("oracle_", oracle)):
            key = f"{prefix}appearance"
            figures[key] = totals.add(key, embedding_distances(embedding, frames, data.truth))
    if feature_network is not None:
        feature_network.statistics(animated, into=totals.fid_animated, batch_size=batch_size)
        feature_network.statistics(data.truth, into=totals.fid_truth, batch_size=batch_size)
    fraction = float(moving.double().mean())
    totals.add("moving_fraction", moving.double().mean(dim=(1, 2)))
    return PairMetrics(name=name, frames=len(data.truth), moving_fraction=fraction, **figures), animated


# --------------------------------------------------------------------------------------------
# the dataset

#: Called after each pair with its files and the animation ``(T, 3, H, W)``.
OnPair = Callable[[CrossPairFiles, Tensor], object]


def evaluate_cross_identity(
    animate: Animation,
    dataset: str | Path,
    frame_shape: Sequence[int],
    landmark_detector: Optional[LandmarkDetector] = None,
    embedding: Optional[EmbeddingNetwork] = None,
    feature_network: Optional[FeatureNetwork] = None,
    num_pairs: Optional[int] = None,
    batch_size: int = 8,
    on_pair: Optional[OnPair] = None,
    progress: bool = False,
    settings: Optional[dict] = None,
) -> EvaluationResult:
    """Animate every cross pair of ``dataset`` (the first ``num_pairs``) with ``animate`` at
    ``frame_shape`` ``(H, W, C)`` and measure it against the truth (module docstring).

    ``landmark_detector`` enables the pose errors (its landmarks must be the dataset's keypoints,
    as a detector from ``fomm train-landmarks`` on the same kind of dataset; else they are n/a),
    ``embedding`` the appearance distances, ``feature_network`` FID (all animated frames against
    all truth frames). ``settings`` are added to the result's. Returns an
    :class:`~fomm.evaluation.results.EvaluationResult` whose rows are :class:`PairMetrics`.

    Raises DataError for a missing dataset or one without cross pairs, UserError for a count
    below 1.
    """
    if num_pairs is not None and num_pairs < 1:
        raise DataError(f"the number of cross pairs must be at least 1, got {num_pairs}")
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")
    root = dataset_folder(dataset)
    meta = read_meta(root)
    pairs = list_cross_pairs(root)[:num_pairs]
    height, width = int(frame_shape[0]), int(frame_shape[1])
    if feature_network is not None:
        feature_network.check(height, width)
    totals = _Totals()
    rows: list[PairMetrics] = []
    for pair in tqdm(pairs, desc="cross-identity", unit="pair", disable=not progress):
        data = read_pair(pair, frame_shape)
        totals.pair_videos.append((pair.source.name, pair.driving.name))
        row, animated = _evaluate_pair(pair.name, data, animate, totals, landmark_detector, embedding,
                                       feature_network, batch_size)
        rows.append(row)
        if on_pair is not None:
            on_pair(pair, animated)
    metrics = _metric_rows(totals, f"{width}x{height}", landmark_detector, embedding, feature_network)
    return EvaluationResult(metrics, rows, {
        "dataset": str(root), "protocol": "cross-identity", "pairs": len(rows),
        "frames": int(sum(row.frames for row in rows)), "frame_size": [height, width],
        "motion": "relative (the truth of the cross pairs is relative animation)",
        "truth": meta.get("cross_pairs_truth"),
        "oracle": "the source animated by the truth video itself (perfect driving motion)",
        "embedding": embedding_name(embedding),
        **(settings or {})}, row_kind="pair")


def _ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    if numerator is None or denominator is None or not denominator or math.isnan(denominator):
        return None
    return numerator / denominator


def _zero_denominator(totals: _Totals, denominator: str) -> str:
    """The reason a ratio over ``denominator`` (a key of ``totals``) is n/a when that is zero, else ''."""
    return "the denominator is zero: no ratio" if totals.value(denominator) == 0 else ""


def _interval_rows(totals: _Totals, name: str, denominator: str) -> list[Metric]:
    """The two ends of a ratio's 95 % interval over the pairs (n/a below two pairs, or where the
    denominator is zero)."""
    interval = totals.ratio_interval("l1_moving", denominator)
    note = ("" if interval is not None else
            _zero_denominator(totals, denominator) or "fewer than two pairs with moving pixels")
    ends = interval if interval is not None else (None, None)
    return [Metric(f"{name}_{end}", bound, "ratio",
                   f"{end} end of {name}'s 95 % interval: the split's videos resampled, each pair counted as often "
                   f"as its two videos were drawn (bootstrap, 10,000 draws, seed 0)", note)
            for end, bound in zip(("low", "high"), ends)]


def _metric_rows(totals: _Totals, size: str, detector: Optional[LandmarkDetector],
                 embedding: Optional[EmbeddingNetwork], network: Optional[FeatureNetwork]) -> list[Metric]:
    """The pooled table; each figure n/a (None) with its reason where it could not be computed."""
    value = totals.value
    no_moving = "" if value("l1_moving") is not None else "no moving pixels"
    pose_note = ("no landmark detector given (--landmarks)" if detector is None else
                 "" if value("pose_error_px") is not None else
                 "the detector's landmarks are not the dataset's keypoints")
    appearance_note = "" if embedding is not None else "no embedding network"
    name = embedding_name(embedding) or "none"
    fid, fid_note = None, "no feature network given (--fid-network)"
    if network is not None:
        try:
            fid, fid_note = totals.fid_animated.frechet_distance(totals.fid_truth), ""
        except DataError as error:
            fid_note = str(error)
    return [
        Metric("L1", value("l1"), "[0,1]", "mean |animated - truth| over the pixels the source shows"),
        Metric("L1_moving", value("l1_moving"), "[0,1]", "the same over the moving pixels only", no_moving),
        Metric("L1_repeat_source", value("repeat_l1"), "[0,1]",
               "baseline: L1 of the source repeated (no motion); a model must be below it"),
        Metric("L1_moving_repeat_source", value("repeat_l1_moving"), "[0,1]", "the baseline on moving pixels",
               no_moving),
        Metric("L1_oracle", value("oracle_l1"), "[0,1]",
               "oracle: the source animated by the truth video itself (perfect driving motion)"),
        Metric("L1_moving_oracle", value("oracle_l1_moving"), "[0,1]",
               "oracle gap: the oracle's L1 on moving pixels (the error left when the driving motion is perfect)",
               no_moving),
        Metric("moving_vs_repeat_source", _ratio(value("l1_moving"), value("repeat_l1_moving")), "ratio",
               "L1_moving / L1_moving_repeat_source (below 1: better than no motion)",
               no_moving or _zero_denominator(totals, "repeat_l1_moving")),
        Metric("moving_vs_oracle", _ratio(value("l1_moving"), value("oracle_l1_moving")), "ratio",
               "L1_moving / L1_moving_oracle (1: the transfer costs nothing over self-reconstruction)",
               no_moving or _zero_denominator(totals, "oracle_l1_moving")),
        *_interval_rows(totals, "moving_vs_repeat_source", "repeat_l1_moving"),
        *_interval_rows(totals, "moving_vs_oracle", "oracle_l1_moving"),
        Metric("moving_fraction", value("moving_fraction"), "fraction", "share of the pixels that moved"),
        Metric("transfer_gap", value("transfer_gap_px"), f"px @{size}",
               "relative transfer of the true keypoints, A(0) + B(t) - B(0), against the truth's (no model)",
               "" if value("transfer_gap_px") is not None else "no keypoints of the same points on both videos"),
        Metric("pose_error", value("pose_error_px"), f"px @{size}",
               "landmarks detected on the animation against the truth's keypoints", pose_note),
        Metric("pose_error_oracle", value("oracle_pose_error_px"), f"px @{size}",
               "the same on the oracle's frames", pose_note),
        Metric("pose_error_truth", value("truth_pose_error_px"), f"px @{size}",
               "the same on the truth's own frames: the detector's floor", pose_note),
        Metric("appearance", value("appearance"), "embedding L2",
               f"distance of identity embeddings ({name}) of animated vs truth frames", appearance_note),
        Metric("appearance_repeat_source", value("repeat_appearance"), "embedding L2",
               "the same for the source repeated", appearance_note),
        Metric("appearance_oracle", value("oracle_appearance"), "embedding L2",
               "the same for the oracle", appearance_note),
        Metric("FID", fid, "feature L2^2", "Frechet distance, all animated vs all truth frames", fid_note),
    ]
