"""The evaluation protocol of the papers on a dataset's test split.

Video reconstruction (Sec. 4.1 of Siarohin et al. 2019): for every test video, the first frame is
the source and every frame is driving; the driving keypoints are used as they are (absolute
motion, as the original ``reconstruction.py`` did), so a perfect model reproduces the video.
Frames are resized to the model's frame size. On the reconstructed videos
(:mod:`fomm.evaluation.metrics` defines each number):

* **L1**: mean absolute difference between generated and driving pixels, in [0, 1] units,
  averaged over every pixel, channel and frame of every evaluated video.
* **AKD** (pixels of the evaluation frame) and **MKR** (fraction), with an external
  :class:`~fomm.evaluation.metrics.LandmarkDetector` run on the generated and on the driving frame.
  AKD and MKR are refused (n/a, with the reason) when the detector's own recorded test error is
  above :data:`~fomm.evaluation.landmarks.MAX_DETECTOR_TEST_ERROR`: a weak detector answers
  nearly the same for every frame, which reads as a near-zero AKD.
* **AED**: distance between identity embeddings (an
  :class:`~fomm.evaluation.metrics.EmbeddingNetwork`; the papers used re-id networks,
  :class:`~fomm.evaluation.metrics.ColorHistogramEmbedding` needs no weights).
* **FID**: Fréchet distance between the features of all generated and all driving frames, with a
  :class:`~fomm.evaluation.fid.FeatureNetwork` the user supplies (:mod:`fomm.evaluation.fid`).
* **kp_acceleration**: the mean norm of the second difference in time of the model's keypoint
  tracks on each driving video, in % of width: temporal stability, no ground truth needed.

Keypoint quality, where the dataset has ground truth beside its videos (the synthetic datasets of
:mod:`fomm.data.synthetic`):

* **keypoint error**: a linear regression with bias from the model's ``K`` learned keypoints to
  the ``J`` ground-truth keypoints, fit on train-split frames and applied to test-split frames (the
  protocol of Thewlis et al. / Jakab et al. for unsupervised landmarks); the mean distance to
  ground truth over visible points, in **% of the image width**.
* **temporal jitter**: the error of the regressed tracks' frame-to-frame motion, in % of width.
* **flow EPE**: the end-point error of the model's dense ``deformation`` (source frame 0, driving
  frame ``t``, absolute keypoints, upsampled to the frame size) against the ground-truth backward
  flow, in **pixels**.

Metrics that the dataset or the given detectors do not allow are reported as n/a with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from ..animate import Animator
from ..config import DatasetParams
from ..data.datasets import FramesDataset, dataset_folder, list_videos, video_id
from ..data.synthetic.writer import GroundTruth, ground_truth_path, load_ground_truth, read_meta
from ..data.video import read_video
from ..errors import DataError, UserError
from ..models import MotionModel
from .fid import FeatureNetwork, FeatureStatistics
from .landmarks import MAX_DETECTOR_TEST_ERROR, TrainedLandmarkDetector, detector_test_error
from .metrics import (
    DeformationResize,
    EmbeddingNetwork,
    KeypointRegression,
    LandmarkComparison,
    LandmarkDetector,
    PooledMean,
    acceleration_norms,
    compare_landmarks,
    embedding_distances,
    embedding_name,
    fit_keypoint_regression,
    flow_end_point_error,
    l1_error,
    point_distances,
    resize_flow,
    velocity_errors,
)
from .results import EvaluationResult, Metric, ReconstructionWriter, VideoMetrics

logger = logging.getLogger(__name__)

__all__ = [
    "DatasetSplit",
    "OnVideo",
    "Reconstruction",
    "dataset_split",
    "detect_keypoints",
    "evaluate_dataset",
    "fit_regression_on_train_split",
    "read_frames",
    "reconstruct_video",
]


# --------------------------------------------------------------------------------------------
# one video


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
def reconstruct_video(model: MotionModel, frames: Tensor, batch_size: int = 8, keep_deformation: bool = False,
                      precision: str = "fp32") -> Reconstruction:
    """Reconstruct ``frames`` ``(T, 3, H, W)`` (at the model's size, in [0, 1]) from frame 0.

    Every frame drives with its own keypoints as they are (absolute motion): the original
    reconstruction protocol. Batches of ``batch_size`` driving frames share one encoded source.
    ``precision`` as :class:`~fomm.animate.Animator`'s.
    """
    animator = Animator(model, relative=False, batch_size=batch_size, precision=precision)
    predictions, keypoints, deformations = [], [], []
    for batch in animator.batches(frames[0], frames.split(batch_size)):
        predictions.append(batch.prediction)
        keypoints.append(model.points(batch.driving_motion).float().cpu())
        if keep_deformation and batch.output.deformation is not None:
            deformations.append(batch.output.deformation.float().cpu())
    deformation = torch.cat(deformations) if deformations else None
    return Reconstruction(torch.cat(predictions), torch.cat(keypoints), deformation)


def detect_keypoints(model: MotionModel, frames: Tensor, batch_size: int = 8, precision: str = "fp32") -> Tensor:
    """The model's points ``(T, N, 2)`` of ``frames`` ``(T, 3, H, W)`` (FOMM's keypoints), on the CPU."""
    animator = Animator(model, batch_size=batch_size, precision=precision)
    return model.points(animator.describe(frames)).float().cpu()


#: A filter of keypoint tracks ``(T, K, 2)`` -> ``(T, K, 2)`` (e.g. :func:`~fomm.evaluation.metrics.smooth_tracks`).
TrackFilter = Callable[[np.ndarray], np.ndarray]


def _filtered(tracks: Tensor, keypoint_filter: Optional[TrackFilter]) -> Tensor:
    if keypoint_filter is None:
        return tracks
    return torch.as_tensor(np.asarray(keypoint_filter(tracks.numpy()), dtype=np.float32))


# --------------------------------------------------------------------------------------------
# the dataset


@dataclass
class DatasetSplit:
    """Video paths of one split of a dataset, in the dataset's order."""

    folder: Path
    paths: list[Path]


def dataset_split(root: Path, frame_shape: Sequence[int], split: str,
                  params: Optional[DatasetParams] = None) -> DatasetSplit:
    """The ``split`` ('train' or 'test') videos of ``root`` as :class:`~fomm.data.FramesDataset`
    sees them: ``train/`` and ``test/`` folders, or the seeded split of a flat folder (seed,
    test fraction and ``id_sampling`` from ``params``, the model config's ``dataset_params``,
    when given).

    Raises DataError for a missing folder or a split without usable videos.
    """
    root = Path(root)
    # Only the videos are listed: the training pairs a config samples (cross pairs, flow for
    # nearby pairs) are not read, so a model trained on cross pairs evaluates any dataset.
    update = {"root_dir": str(root), "frame_shape": tuple(frame_shape), "augmentation_params": None,
              "pairs_list": None, "cache_frames": False, "cross_pair_ratio": 0.0, "compute_flow": False,
              "cache_flow": False}
    params = params.model_copy(update=update) if params is not None else DatasetParams(**update)
    dataset = FramesDataset(params, is_train=split == "train", augment=False)
    folder = root / split if (root / "train").is_dir() else root
    names = list(dataset.videos)
    if split == "train" and params.id_sampling:  # training datasets list identities, not videos
        ids = set(names)
        names = [path.name for path in list_videos(folder) if video_id(path.name) in ids]
    return DatasetSplit(folder, [folder / name for name in names])


def read_frames(path: Path, frame_shape: Sequence[int]) -> Tensor:
    """All frames of a video resized to ``frame_shape``: ``(T, 3, H, W)`` float in [0, 1]."""
    frames = read_video(path, tuple(frame_shape))
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0


def _has_ground_truth(paths: Sequence[Path]) -> bool:
    return bool(paths) and all(ground_truth_path(path).is_file() for path in paths)


def _load_ground_truth(path: Path, frames: int) -> GroundTruth:
    truth = load_ground_truth(path)
    if len(truth.keypoints) != frames:
        raise DataError(f"{path}: {frames} frames but ground truth for {len(truth.keypoints)}")
    return truth


def fit_regression_on_train_split(model: MotionModel, root: Path, batch_size: int = 8,
                                  max_train_videos: Optional[int] = 100, precision: str = "fp32",
                                  keypoint_filter: Optional[TrackFilter] = None
                                  ) -> tuple[Optional[KeypointRegression], str]:
    """Fit the learned -> ground-truth keypoint regression on up to ``max_train_videos`` (None:
    all) train videos of ``root`` that have ground truth (each video's tracks through
    ``keypoint_filter`` first, when given); ``(None, reason)`` when there are none.

    Raises DataError when ground truth and video disagree on the frame count or the train videos
    have different numbers of ground-truth keypoints.
    """
    try:
        train = dataset_split(root, model.frame_shape, "train", model.config.dataset_params)
    except DataError as error:
        return None, f"no train videos to fit the keypoint regression ({error})"
    paths = [path for path in train.paths if _has_ground_truth([path])][:max_train_videos]
    if not paths:
        return None, "train videos have no ground-truth keypoints"
    learned, points, visible = [], [], []
    for path in paths:
        frames = read_frames(path, model.frame_shape)
        truth = _load_ground_truth(path, len(frames))
        learned.append(_filtered(detect_keypoints(model, frames, batch_size, precision), keypoint_filter).numpy())
        points.append(np.asarray(truth.keypoints, dtype=np.float64))
        visible.append(np.asarray(truth.visibility, dtype=bool))
    if len({p.shape[1] for p in points}) != 1:
        raise DataError(f"{root}: train videos have different numbers of ground-truth keypoints")
    learned_all = np.concatenate(learned)
    parameters = learned_all.shape[1] * 2 + 1
    if len(learned_all) < parameters:
        logger.warning("keypoint regression fit on %d frames, fewer than its %d parameters per coordinate",
                       len(learned_all), parameters)
    return fit_keypoint_regression(learned_all, np.concatenate(points), np.concatenate(visible)), ""


def _warn_on_kind_mismatch(detector: LandmarkDetector, dataset: Path) -> None:
    """A detector trained on sprites says nothing about warped photos: warn, as the numbers would
    look valid."""
    if not isinstance(detector, TrainedLandmarkDetector):
        return
    detector_kind, kind = detector.config.dataset_kind, read_meta(dataset).get("kind")
    if detector_kind and kind and kind != detector_kind:
        logger.warning("the landmark detector was trained on a '%s' dataset but %s is '%s': AKD and MKR "
                       "will not be meaningful", detector_kind, dataset, kind)


def _weak_detector_note(detector: LandmarkDetector, allow_weak: bool) -> str:
    """Why AKD and MKR must not be computed with ``detector`` ('' when they may).

    A detector that has not learnt its task answers nearly the same landmarks for every frame, so
    generated and driving frames agree and AKD collapses towards 0: a weak detector makes every
    model look good. A detector whose recorded test error (:func:`detector_test_error`) is above
    :data:`MAX_DETECTOR_TEST_ERROR` is refused unless ``allow_weak``; one with no recorded error (a
    detector of the user's own) cannot be judged, so it is used with a warning."""
    error = detector_test_error(detector)
    if error is None:
        logger.warning("the landmark detector has no recorded test error, so its quality cannot be checked: "
                       "AKD and MKR are computed, but a weak detector makes them read near zero")
        return ""
    if error <= MAX_DETECTOR_TEST_ERROR:
        return ""
    if allow_weak:
        logger.warning("the landmark detector's own test error is %.2f %% of width, above the %.1f %% threshold; "
                       "AKD and MKR are computed anyway (allowed), but they may read too low", error,
                       MAX_DETECTOR_TEST_ERROR)
        return ""
    note = (f"refused: the detector's own test error {error:.2f} % of width is above the "
            f"{MAX_DETECTOR_TEST_ERROR:.1f} % threshold (weak detectors make AKD read near zero; "
            "--allow-weak-landmarks overrides)")
    logger.warning("AKD and MKR %s", note)
    return note


# --------------------------------------------------------------------------------------------
# the pass over the test videos


@dataclass
class _Totals:
    """Pooled terms of every metric over the videos seen so far."""

    l1: PooledMean = field(default_factory=PooledMean)
    l1_first_frame: PooledMean = field(default_factory=PooledMean)
    aed: PooledMean = field(default_factory=PooledMean)
    kp_error: PooledMean = field(default_factory=PooledMean)
    jitter: PooledMean = field(default_factory=PooledMean)
    kp_acceleration: PooledMean = field(default_factory=PooledMean)
    flow_epe: PooledMean = field(default_factory=PooledMean)
    landmarks: LandmarkComparison = field(default_factory=LandmarkComparison)
    fid_generated: FeatureStatistics = field(default_factory=FeatureStatistics)
    fid_driving: FeatureStatistics = field(default_factory=FeatureStatistics)


def _ground_truth_metrics(row: VideoMetrics, totals: _Totals, result: Reconstruction, truth: GroundTruth,
                          regression: Optional[KeypointRegression], height: int, width: int,
                          resize: DeformationResize) -> None:
    """Keypoint error and jitter of the regressed tracks, and flow EPE, of one video (into ``row``
    and ``totals``), in % of width and pixels; ``resize`` is the model's
    :meth:`~fomm.models.MotionModel.resize_deformation`."""
    if regression is not None:
        tracks = regression.predict(result.kp_driving.numpy())
        visible = np.asarray(truth.visibility, dtype=bool)
        points = np.asarray(truth.keypoints, dtype=np.float64)
        row.keypoint_error = totals.kp_error.add(point_distances(tracks, points, visible, width, height) / width * 100)
        row.jitter = totals.jitter.add(velocity_errors(tracks, points, visible, width, height) / width * 100)
    if truth.flow is not None and result.deformation is not None:
        errors = flow_end_point_error(result.deformation, resize_flow(truth.flow, height, width),
                                      resize=resize)
        row.flow_epe_px = totals.flow_epe.add(errors)


#: Called after each test video with its path, its frames ``(T, 3, H, W)`` and its reconstruction.
OnVideo = Callable[[Path, Tensor, Reconstruction], object]


def evaluate_dataset(
    model: MotionModel,
    dataset: str | Path,
    landmark_detector: Optional[LandmarkDetector] = None,
    embedding: Optional[EmbeddingNetwork] = None,
    num_videos: Optional[int] = None,
    batch_size: int = 8,
    max_train_videos: Optional[int] = 100,
    keypoint_metrics: bool = True,
    writer: Optional[ReconstructionWriter] = None,
    on_video: Optional[OnVideo] = None,
    precision: str = "fp32",
    progress: bool = False,
    feature_network: Optional[FeatureNetwork] = None,
    allow_weak_landmarks: bool = False,
    keypoint_filter: Optional[TrackFilter] = None,
) -> EvaluationResult:
    """Reconstruct the test videos of ``dataset`` and compute every metric that it allows.

    Frames are resized to the model's frame size. ``landmark_detector`` enables AKD and MKR
    (refused, n/a with the reason, when its recorded test error is above
    :data:`~fomm.evaluation.landmarks.MAX_DETECTOR_TEST_ERROR`, unless ``allow_weak_landmarks``),
    ``embedding`` AED, ``feature_network`` FID (all generated frames against all driving frames).
    ``kp_acceleration`` (the model's keypoint tracks on the driving videos) is always computed.
    With ground truth beside the videos (synthetic datasets) and
    ``keypoint_metrics``, the keypoint regression is fit on the learned keypoints of up to
    ``max_train_videos`` train videos (None: all) and the keypoint error, jitter and (with
    ground-truth flow) flow EPE are computed on the test videos. ``num_videos`` limits the test
    videos (the first ones, by name). ``writer`` writes each reconstruction out; ``on_video`` is
    called after each video (see :data:`OnVideo`). ``keypoint_filter`` passes the model's keypoint
    tracks of every video (train videos of the regression included) through a temporal filter
    before the keypoint metrics (keypoint error, jitter, kp_acceleration): the baseline of a
    stability claim; the frames are not animated again with them.

    Raises DataError for a missing dataset or one without test videos, UserError for counts
    below 1, CheckpointError for a feature network whose output does not fit.
    """
    if num_videos is not None and num_videos < 1:
        raise DataError(f"the number of test videos must be at least 1, got {num_videos}")
    if max_train_videos is not None and max_train_videos < 1:
        raise DataError(f"the number of train videos must be at least 1, got {max_train_videos}")
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")
    root = dataset_folder(dataset)
    read_meta(root)  # a meta.json that is not an object of dataset facts is refused, not ignored
    frame_shape = model.frame_shape
    height, width = frame_shape[0], frame_shape[1]
    test = dataset_split(root, frame_shape, "test", model.config.dataset_params)
    paths = test.paths[:num_videos] if num_videos is not None else test.paths
    landmark_note = "no landmark detector given (--landmarks)"
    detector_error = detector_test_error(landmark_detector) if landmark_detector is not None else None
    if landmark_detector is not None:
        landmark_note = _weak_detector_note(landmark_detector, allow_weak_landmarks)
        if landmark_note:
            landmark_detector = None  # refused: not run at all
        else:
            _warn_on_kind_mismatch(landmark_detector, root)
    if feature_network is not None:
        feature_network.check(height, width)  # a network that does not fit fails before the long pass

    regression: Optional[KeypointRegression] = None
    has_truth = keypoint_metrics and _has_ground_truth(paths)
    truth_note = "not requested" if not keypoint_metrics else "dataset has no ground-truth keypoints"
    regression_note = truth_note
    if has_truth:
        regression, regression_note = fit_regression_on_train_split(model, root, batch_size, max_train_videos,
                                                                    precision, keypoint_filter)

    totals = _Totals()
    rows: list[VideoMetrics] = []
    num_points = 0
    for path in tqdm(paths, desc="evaluating", unit="video", disable=not progress):
        frames = read_frames(path, frame_shape)
        truth = _load_ground_truth(path, len(frames)) if has_truth else None
        result = reconstruct_video(model, frames, batch_size, precision=precision,
                                   keep_deformation=truth is not None and truth.flow is not None)
        result.kp_driving = _filtered(result.kp_driving, keypoint_filter)
        num_points = result.kp_driving.shape[1]
        row = VideoMetrics(name=path.name, frames=len(frames), l1=l1_error(result.prediction, frames))
        totals.l1.add((result.prediction.double() - frames.double()).abs().mean(dim=(1, 2, 3)).numpy())
        # The trivial baseline: the source (frame 0) repeated, no motion at all.
        totals.l1_first_frame.add((frames[:1].double() - frames.double()).abs().mean(dim=(1, 2, 3)).numpy())
        if landmark_detector is not None:
            comparison = compare_landmarks(landmark_detector, result.prediction, frames)
            totals.landmarks = totals.landmarks + comparison
            row.akd_px, row.mkr = comparison.akd, comparison.mkr
        if embedding is not None:
            row.aed = totals.aed.add(embedding_distances(embedding, result.prediction, frames))
        if feature_network is not None:
            feature_network.statistics(result.prediction, into=totals.fid_generated, batch_size=batch_size)
            feature_network.statistics(frames, into=totals.fid_driving, batch_size=batch_size)
        # The model's keypoints of every driving frame (as detect_keypoints gives them).
        row.kp_acceleration = totals.kp_acceleration.add(
            acceleration_norms(result.kp_driving, width, height) / width * 100)
        if truth is not None:
            _ground_truth_metrics(row, totals, result, truth, regression, height, width, model.resize_deformation)
        rows.append(row)
        if writer is not None:
            writer.write(path, result.prediction)
        if on_video is not None:
            on_video(path, frames, result)

    name = embedding_name(embedding)
    metrics = _metric_rows(totals, f"{width}x{height}", landmark_note, name,
                           _fid_row(totals, feature_network), regression is not None, regression_note, has_truth,
                           truth_note)
    settings = {"dataset": str(root), "test_videos": len(paths), "frames": int(sum(r.frames for r in rows)),
                "frame_size": [height, width], "num_kp": num_points,
                "motion": "absolute (reconstruction protocol: source = frame 0)",
                "regression_train_frames": regression.train_frames if regression is not None else None,
                "embedding": name, "precision": precision,
                "landmark_detector_test_error": detector_error,
                "feature_network": feature_network.name if feature_network is not None else None,
                "keypoint_filter": getattr(keypoint_filter, "__name__", None) if keypoint_filter else None}
    return EvaluationResult(metrics, rows, settings)


def _fid_row(totals: _Totals, network: Optional[FeatureNetwork]) -> Metric:
    """FID of the pooled feature statistics (n/a without a network or with fewer than 2 frames)."""
    value, note, name = None, "no feature network given (--fid-network)", "none"
    if network is not None:
        name = network.name
        try:
            value, note = totals.fid_generated.frechet_distance(totals.fid_driving), ""
        except DataError as error:
            note = str(error)
    return Metric("FID", value, "feature L2^2",
                  f"Frechet distance of {name} features, all generated vs all driving frames "
                  f"({totals.fid_generated.count} each)", note)


def _metric_rows(totals: _Totals, size: str, landmark_note: str, embedding_name: Optional[str], fid: Metric,
                 has_regression: bool, regression_note: str, has_truth: bool, truth_note: str) -> list[Metric]:
    """The pooled table, each metric n/a (None) with its reason where it could not be computed
    (``landmark_note`` is '' when AKD and MKR were computed)."""
    has_landmarks = not landmark_note
    has_acceleration = totals.kp_acceleration.count > 0
    has_flow = totals.flow_epe.count > 0
    flow_note = "" if has_flow else ("dataset has no ground-truth flow" if has_truth else truth_note)
    kp_note = "" if has_regression else regression_note
    return [
        Metric("L1", totals.l1.value, "[0,1]", "mean |generated - driving| per pixel and channel"),
        Metric("L1_first_frame", totals.l1_first_frame.value, "[0,1]",
               "baseline: L1 of repeating the first frame (no motion); a model must be below it"),
        Metric("AKD", totals.landmarks.akd if has_landmarks else None, f"px @{size}",
               "average distance of landmarks detected on generated vs driving frames", landmark_note),
        Metric("MKR", totals.landmarks.mkr if has_landmarks else None, "fraction",
               "landmarks detected on the driving frame but missing on the generated one", landmark_note),
        Metric("AED", totals.aed.value if embedding_name else None, "embedding L2",
               f"distance of identity embeddings ({embedding_name or 'none'}) of generated vs driving",
               "" if embedding_name else "no embedding network"),
        fid,
        Metric("keypoint_error", totals.kp_error.value if has_regression else None, "% width",
               "linear regression learned->GT keypoints (fit on train, test frames, visible points)", kp_note),
        Metric("jitter", totals.jitter.value if has_regression else None, "% width",
               "mean |(p[t+1]-p[t]) - (g[t+1]-g[t])| of regressed tracks, visible in both frames", kp_note),
        Metric("kp_acceleration", totals.kp_acceleration.value if has_acceleration else None, "% width",
               "mean |p[t+1] - 2 p[t] + p[t-1]| of the model's keypoints on the driving frames (no ground truth)",
               "" if has_acceleration else "test videos have fewer than 3 frames"),
        Metric("flow_epe", totals.flow_epe.value if has_flow else None, f"px @{size}",
               "end-point error of the dense deformation vs ground-truth backward flow (frames 1..T-1)", flow_note),
    ]
