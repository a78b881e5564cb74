"""The metric functions of the papers, on arrays: no model, no files.

Conventions: points are ``(..., 2)``, x then y, in [-1, 1] with -1 and 1 at the centres of the
corner pixels; a distance in those units becomes pixels through :func:`fomm.geometry.pixel_scale`.
Frames are ``(T, 3, H, W)`` float in [0, 1].

* :func:`l1_error`: reconstruction L1 in [0, 1] units.
* :func:`compare_landmarks` -> :class:`LandmarkComparison`: AKD (pixels) and MKR (fraction) from
  any :class:`LandmarkDetector`.
* :func:`embedding_distances`: per-frame distances between :class:`EmbeddingNetwork` embeddings
  (AED); :class:`ColorHistogramEmbedding` is the one that needs no weights.
* :func:`fit_keypoint_regression` -> :class:`KeypointRegression`: learned keypoints -> ground truth.
* :func:`landmark_error` / :func:`keypoint_error`, :func:`temporal_jitter`: % of image width.
* :func:`keypoint_acceleration` (terms: :func:`acceleration_norms`): the shake of keypoint tracks
  without ground truth, % of image width; :func:`smooth_tracks`, the plain temporal filter that
  is the baseline of any stability claim.
* :func:`flow_end_point_error`: pixels; :func:`resize_flow` resamples ground-truth flow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..geometry import pixel_scale, resize_grid

__all__ = [
    "PooledMean",
    "COLOR_EMBEDDINGS",
    "ColorHistogramEmbedding",
    "embedding_name",
    "gaussian_blur",
    "Detections",
    "EmbeddingNetwork",
    "KeypointRegression",
    "LandmarkComparison",
    "LandmarkDetector",
    "acceleration_norms",
    "as_detections",
    "compare_landmarks",
    "embedding_distances",
    "fit_keypoint_regression",
    "flow_end_point_error",
    "keypoint_acceleration",
    "keypoint_error",
    "l1_error",
    "landmark_error",
    "point_distances",
    "resize_flow",
    "smooth_tracks",
    "temporal_jitter",
    "velocity_errors",
]

ArrayLike = Tensor | np.ndarray


def _numpy(array: ArrayLike) -> np.ndarray:
    return array.detach().cpu().numpy() if isinstance(array, Tensor) else np.asarray(array)


def _pixels_per_unit(width: int, height: int) -> np.ndarray:
    return np.asarray(pixel_scale(width, height), dtype=np.float64)


class PooledMean:
    """The mean of every term added so far (kept as sum and count, so videos or pairs count by
    their number of terms); NaN while empty."""

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, values: ArrayLike | float) -> Optional[float]:
        """Add the finite ``values``; returns their own mean (None when there are none)."""
        array = _numpy(values.double() if isinstance(values, Tensor) else values).astype(np.float64).ravel()
        array = array[np.isfinite(array)]
        self.total += float(array.sum())
        self.count += int(array.size)
        return float(array.mean()) if array.size else None

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else float("nan")


# --------------------------------------------------------------------------------------------
# reconstruction


def l1_error(prediction: ArrayLike, target: ArrayLike) -> float:
    """Mean absolute difference of two image stacks of equal shape (values in [0, 1])."""
    prediction, target = _numpy(prediction).astype(np.float64), _numpy(target).astype(np.float64)
    if prediction.shape != target.shape:
        raise ValueError(f"L1 needs equal shapes, got {prediction.shape} and {target.shape}")
    return float(np.abs(prediction - target).mean())


# --------------------------------------------------------------------------------------------
# landmarks: AKD and MKR


class Detections(NamedTuple):
    """Landmarks of ``T`` frames: ``points`` ``(T, J, 2)`` float, (x, y) in [-1, 1]; ``detected``
    ``(T, J)`` bool, False where the detector did not find the landmark (its point is then
    meaningless). A plain ``(points, detected)`` tuple of numpy arrays or tensors is accepted
    wherever a ``Detections`` is expected."""

    points: np.ndarray
    detected: np.ndarray


@runtime_checkable
class LandmarkDetector(Protocol):
    """Anything that maps frames ``(T, 3, H, W)`` float in [0, 1] (a tensor, any ``H x W``) to
    :class:`Detections` ``(points (T, J, 2) in [-1, 1], detected (T, J) bool)``; ``J`` must not
    depend on the frames. The papers used a face-alignment network (VoxCeleb) and OpenPose
    (Tai-Chi); :class:`fomm.evaluation.landmarks.TrainedLandmarkDetector` is one for the synthetic
    datasets."""

    def __call__(self, frames: Tensor) -> Detections: ...


def as_detections(result: object) -> Detections:
    """Normalise a detector's return value to numpy :class:`Detections`, checking shapes."""
    try:
        points, detected = result  # type: ignore[misc]
    except (TypeError, ValueError):
        raise TypeError(f"a landmark detector must return (points, detected), got {type(result).__name__}") from None
    points, detected = _numpy(points), _numpy(detected)
    if points.ndim != 3 or points.shape[-1] != 2 or detected.shape != points.shape[:2]:
        raise ValueError(f"landmark detector returned points {points.shape} and flags {detected.shape}; "
                         "expected (T, J, 2) and (T, J)")
    return Detections(points.astype(np.float64), detected.astype(bool))


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
    offsets = (found_generated.points - found_driving.points) * _pixels_per_unit(width, height)
    distance = np.linalg.norm(offsets, axis=-1)
    both = found_generated.detected & found_driving.detected
    missing = found_driving.detected & ~found_generated.detected
    return LandmarkComparison(float(distance[both].sum()), int(both.sum()), int(missing.sum()),
                              int(found_driving.detected.sum()))


# --------------------------------------------------------------------------------------------
# identity embeddings: AED


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

    ``smooth``: the hard histogram also counts what any warp does to a sharp image. Resampling
    blends neighbouring pixels into colours of other bins: the ground truth itself shifted by half
    a pixel reads 0.145 against the truth, as far as a trained model's animation, while another
    figure reads 1.14 (``scripts/appearance_controls.py``). With ``smooth`` both images are
    blurred first (a Gaussian of ``blur_sigma`` pixels, the same for both) and each pixel is
    spread over its 8 nearest bin centres (trilinear weights), so that a sub-pixel resampling
    moves the histogram a little and a change of colours still moves it far (0.033 and 1.03).
    """

    def __init__(self, bins: int = 8, smooth: bool = False, blur_sigma: float = 1.0) -> None:
        if bins < 1:
            raise ValueError(f"bins must be positive, got {bins}")
        if smooth and not blur_sigma >= 0:
            raise ValueError(f"blur_sigma must be 0 or more, got {blur_sigma}")
        self.bins = bins
        self.smooth = smooth
        self.blur_sigma = blur_sigma

    def __repr__(self) -> str:
        extra = f", smooth=True, blur_sigma={self.blur_sigma}" if self.smooth else ""
        return f"ColorHistogramEmbedding(bins={self.bins}{extra})"

    def __call__(self, frames: Tensor) -> Tensor:
        frames = frames.detach().float().cpu().clamp(0, 1)
        histogram = self._soft_counts(frames) if self.smooth else self._hard_counts(frames)
        return (histogram / histogram.sum(dim=1, keepdim=True)).sqrt()

    def _hard_counts(self, frames: Tensor) -> Tensor:
        levels = (frames * self.bins).long().clamp_max(self.bins - 1)  # (T, 3, H, W)
        index = ((levels[:, 0] * self.bins + levels[:, 1]) * self.bins + levels[:, 2]).flatten(1)
        histogram = torch.zeros(frames.shape[0], self.bins ** 3)
        return histogram.scatter_add_(1, index, torch.ones(index.shape))

    def _soft_counts(self, frames: Tensor) -> Tensor:
        frames = gaussian_blur(frames, self.blur_sigma)
        # Bin i's centre is (i + 0.5) / bins; a value between two centres is shared by both.
        position = frames * self.bins - 0.5
        below = position.floor()
        above_weight = position - below  # (T, 3, H, W)
        below = below.long()
        histogram = torch.zeros(frames.shape[0], self.bins ** 3)
        for corner in range(8):  # the 8 corners of the colour cube cell around each pixel
            index = torch.zeros_like(below[:, 0])
            weight = torch.ones_like(frames[:, 0])
            for channel in range(3):
                upper = (corner >> channel) & 1
                level = (below[:, channel] + upper).clamp(0, self.bins - 1)
                index = index * self.bins + level
                weight = weight * (above_weight[:, channel] if upper else 1 - above_weight[:, channel])
            histogram.scatter_add_(1, index.flatten(1), weight.flatten(1))
        return histogram


#: The embeddings that need no weights, by the name ``--embedding`` gives them.
COLOR_EMBEDDINGS: dict[str, Callable[[], ColorHistogramEmbedding]] = {
    "color-histogram": ColorHistogramEmbedding,
    "smooth-color-histogram": lambda: ColorHistogramEmbedding(smooth=True),
}


def gaussian_blur(frames: Tensor, sigma: float) -> Tensor:
    """``frames`` ``(T, C, H, W)`` blurred by a Gaussian of ``sigma`` pixels (separable, kernel
    radius 3 sigma, edges replicated); ``sigma`` 0 returns them as they are."""
    if sigma <= 0:
        return frames
    radius = max(1, int(3 * sigma + 0.5))
    offsets = torch.arange(-radius, radius + 1, dtype=frames.dtype)
    kernel = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    channels = frames.shape[1]
    rows = F.pad(frames, (radius, radius, 0, 0), mode="replicate")
    frames = F.conv2d(rows, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    columns = F.pad(frames, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(columns, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def embedding_name(embedding: Optional[EmbeddingNetwork]) -> Optional[str]:
    """How results name an embedding: its settings where it shows them (the colour histogram's),
    else its class; None for none."""
    if embedding is None:
        return None
    return repr(embedding) if isinstance(embedding, ColorHistogramEmbedding) else type(embedding).__name__


def embedding_distances(embedding: EmbeddingNetwork, generated: Tensor, driving: Tensor) -> np.ndarray:
    """Per-frame euclidean distances ``(T,)`` between embeddings of generated and driving frames."""
    first, second = _numpy(embedding(generated)).astype(np.float64), _numpy(embedding(driving)).astype(np.float64)
    if first.shape != second.shape or first.ndim != 2 or len(first) != len(generated):
        raise ValueError(f"embedding network returned {first.shape} and {second.shape}; expected (T, D) each")
    return np.linalg.norm(first - second, axis=-1)


# --------------------------------------------------------------------------------------------
# keypoints against ground truth


@dataclass
class KeypointRegression:
    """Linear map with bias from learned keypoints ``(N, K, 2)`` to ground truth ``(N, J, 2)``.

    ``weights`` ``(J, 2K + 1, 2)``: joint ``j`` is ``[x_1, y_1, ..., x_K, y_K, 1] @ weights[j]``.
    ``train_frames`` counts the frames it was fit on.
    """

    weights: np.ndarray
    train_frames: int

    def predict(self, learned: ArrayLike) -> np.ndarray:
        """Regressed joints ``(N, J, 2)`` of learned keypoints ``(N, K, 2)``."""
        features = _design_matrix(_numpy(learned))
        if features.shape[1] != self.weights.shape[1]:
            raise ValueError(f"regression was fit on {(self.weights.shape[1] - 1) // 2} keypoints, "
                             f"got {(features.shape[1] - 1) // 2}")
        return np.einsum("nd,jdc->njc", features, self.weights)


def _design_matrix(learned: np.ndarray) -> np.ndarray:
    flat = learned.reshape(len(learned), -1).astype(np.float64)
    return np.concatenate([flat, np.ones((len(flat), 1))], axis=1)


def fit_keypoint_regression(learned: ArrayLike, truth: ArrayLike,
                            visible: Optional[ArrayLike] = None) -> KeypointRegression:
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


def point_distances(points: ArrayLike, truth: ArrayLike, visible: ArrayLike, width: int,
                    height: Optional[int] = None) -> np.ndarray:
    """Distances in pixels between ``points`` and ``truth`` ``(..., J, 2)`` at the ``visible``
    ``(..., J)`` entries, as a flat array (pixel offsets ``dx (W-1)/2``, ``dy (H-1)/2``; ``height``
    defaults to ``width``)."""
    points, truth = _numpy(points).astype(np.float64), _numpy(truth).astype(np.float64)
    height = width if height is None else height
    distance = np.linalg.norm((points - truth) * _pixels_per_unit(width, height), axis=-1)
    return distance[_numpy(visible).astype(bool)]


def landmark_error(points: ArrayLike, truth: ArrayLike, visible: ArrayLike, width: int,
                   height: Optional[int] = None) -> float:
    """Mean distance between ``points`` and ``truth`` ``(N, J, 2)`` over the ``visible`` ``(N, J)``
    entries, in % of the image width (see :func:`point_distances`; the distance is divided by
    ``W``). NaN when nothing is visible."""
    distances = point_distances(points, truth, visible, width, height)
    return float(distances.mean() / width * 100) if distances.size else float("nan")


def keypoint_error(predicted: ArrayLike, truth: ArrayLike, visible: ArrayLike, width: int,
                   height: Optional[int] = None) -> float:
    """The keypoint error of regressed tracks ``(T, J, 2)`` against ground truth: the
    :func:`landmark_error`, in % of the image width; NaN when nothing is visible."""
    return landmark_error(predicted, truth, visible, width, height)


def velocity_errors(tracks: ArrayLike, truth: ArrayLike, visible: ArrayLike, width: int,
                    height: Optional[int] = None) -> np.ndarray:
    """Per (t, joint) errors in pixels of the frame-to-frame motion of ``tracks`` ``(T, J, 2)``
    against ``truth``, for joints ``visible`` ``(T, J)`` at both t and t + 1, as a flat array."""
    tracks, truth = _numpy(tracks).astype(np.float64), _numpy(truth).astype(np.float64)
    visible = _numpy(visible).astype(bool)
    height = width if height is None else height
    velocity_error = (np.diff(tracks, axis=0) - np.diff(truth, axis=0)) * _pixels_per_unit(width, height)
    return np.linalg.norm(velocity_error, axis=-1)[visible[1:] & visible[:-1]]


def temporal_jitter(tracks: ArrayLike, truth: ArrayLike, visible: ArrayLike, width: int,
                    height: Optional[int] = None) -> float:
    """Temporal jitter of keypoint ``tracks`` ``(T, J, 2)`` against ground truth ``(T, J, 2)``.

    ``jitter = mean over (t, j) of ||(p_{t+1,j} - p_{t,j}) - (g_{t+1,j} - g_{t,j})||_2 / W * 100``

    for t = 0..T-2 and joints visible (``visible`` ``(T, J)``) in both frames t and t+1, with
    offsets in pixels (:func:`velocity_errors`): the error of the tracks' frame-to-frame motion in
    % of the image width. A constant offset from the ground truth costs nothing; noise that makes a
    track shake costs up to twice its amplitude. In evaluation the tracks are the regressed ones
    (:class:`KeypointRegression`), so tracks equal to the ground truth up to an affine map have
    zero jitter. NaN when no joint is visible in two consecutive frames.
    """
    terms = velocity_errors(tracks, truth, visible, width, height)
    return float(terms.mean() / width * 100) if terms.size else float("nan")


# --------------------------------------------------------------------------------------------
# keypoint tracks without ground truth


def smooth_tracks(tracks: ArrayLike) -> np.ndarray:
    """Keypoint ``tracks`` ``(T, K, 2)`` through a plain temporal filter: each frame replaced by
    ``(p[t-1] + 2 p[t] + p[t+1]) / 4`` (the first and last frames repeat themselves as neighbours).

    The jitter baseline: any claim that a model makes keypoints steadier must beat what this
    three-tap binomial filter does to the plain model's tracks (it halves white noise's
    acceleration, and delays nothing).
    """
    tracks = _numpy(tracks).astype(np.float64)
    if tracks.ndim != 3 or tracks.shape[-1] != 2:
        raise ValueError(f"keypoint tracks must be (T, K, 2), got {tracks.shape}")
    padded = np.concatenate([tracks[:1], tracks, tracks[-1:]])
    return (padded[:-2] + 2 * padded[1:-1] + padded[2:]) / 4


def acceleration_norms(tracks: ArrayLike, width: int, height: Optional[int] = None) -> np.ndarray:
    """Per (t, k) norms in pixels of the second difference of keypoint ``tracks`` ``(T, K, 2)``
    ((x, y) in [-1, 1]): ``||p[t+1,k] - 2 p[t,k] + p[t-1,k]||`` for t = 1..T-2, as a flat array of
    ``(T - 2) K`` terms (empty when ``T < 3``); offsets in pixels of a ``width x height`` frame
    (``height`` defaults to ``width``)."""
    tracks = _numpy(tracks).astype(np.float64)
    if tracks.ndim != 3 or tracks.shape[-1] != 2:
        raise ValueError(f"keypoint tracks must be (T, K, 2), got {tracks.shape}")
    height = width if height is None else height
    second = np.diff(tracks, n=2, axis=0) * _pixels_per_unit(width, height)  # (T - 2, K, 2); n=2 needs T >= 3
    return np.linalg.norm(second, axis=-1).ravel()


def keypoint_acceleration(tracks: ArrayLike, width: int, height: Optional[int] = None) -> float:
    """Temporal instability of keypoint ``tracks`` ``(T, K, 2)`` with no ground truth.

    ``acceleration = mean over (t, k) of ||p[t+1,k] - 2 p[t,k] + p[t-1,k]||_2 / W * 100``

    for t = 1..T-2 and every keypoint, with offsets in pixels (:func:`acceleration_norms`): the
    mean norm of each track's second difference, in % of the image width. A track at rest or
    moving at constant velocity scores 0. Detection noise independent per frame, of standard
    deviation ``s`` pixels per coordinate, has a second difference of variance ``6 s^2`` per
    coordinate, so on a still track it scores ``sqrt(6) sqrt(pi / 2) s ~ 3.07 s`` pixels (the mean
    norm of a 2-D Gaussian): shaking keypoints score high. Equivalently, the metric is twice the
    mean distance of each point from the midpoint of its two neighbours in time, the shake that
    optical-flow regularised landmark detectors smooth away.

    It needs no ground truth, so any driving video serves, but real motion accelerates too: only
    compare models on the same videos, and read it beside an accuracy metric (keypoints that do not
    move score 0). NaN for fewer than 3 frames.
    """
    terms = acceleration_norms(tracks, width, height)
    return float(terms.mean() / width * 100) if terms.size else float("nan")


# --------------------------------------------------------------------------------------------
# dense motion against ground-truth flow


#: Brings a deformation ``(T, h, w, 2)`` to ``(T, H, W, 2)``: a model's
#: :meth:`~fomm.models.MotionModel.resize_deformation`.
DeformationResize = Callable[[Tensor, int, int], Tensor]


def flow_end_point_error(deformation: Tensor, flow: ArrayLike, skip_first: bool = True,
                         resize: DeformationResize = resize_grid) -> np.ndarray:
    """Per-frame end-point error in pixels of a dense ``deformation`` against ground-truth ``flow``.

    ``deformation`` ``(T, h, w, 2)`` (the model's sampling grid: driving pixel -> source position,
    (x, y) in [-1, 1]) is upsampled to the flow's ``(T, H, W, 2)`` by ``resize``, as the model's renderer does it
    (pass the model's :meth:`~fomm.models.MotionModel.resize_deformation`; the default is the
    original FOMM's :func:`fomm.geometry.resize_grid`). Both map a pixel of frame t to a position in
    frame 0, so the EPE is ``||d - g||`` with offsets in pixels of the ``H x W`` frame, averaged
    over the pixels whose ground-truth position lies inside frame 0 (elsewhere frame t shows
    content frame 0 does not have, which no model can recover). Returns ``(T - 1,)`` errors for
    frames 1..T-1 with ``skip_first`` (frame 0 is the source itself), else ``(T,)``; NaN for a
    frame with no valid pixel.
    """
    flow = torch.as_tensor(_numpy(flow), dtype=torch.float32)
    if deformation.shape[0] != flow.shape[0]:
        raise ValueError(f"deformation has {deformation.shape[0]} frames, flow {flow.shape[0]}")
    height, width = flow.shape[1:3]
    grid = resize(deformation.float().cpu(), height, width)
    error = ((grid - flow) * torch.tensor(pixel_scale(width, height))).norm(dim=-1)
    valid = (flow.abs() <= 1).all(dim=-1)
    sums, counts = (error * valid).sum(dim=(1, 2)), valid.sum(dim=(1, 2))
    per_frame = torch.where(counts > 0, sums / counts.clamp_min(1), torch.full_like(sums, float("nan")))
    result = per_frame.numpy().astype(np.float64)
    return result[1:] if skip_first else result


def resize_flow(flow: ArrayLike, height: int, width: int) -> Tensor:
    """Ground-truth flow ``(T, H0, W0, 2)`` resampled to ``(T, height, width, 2)``.

    Values are normalised positions, so they stay as they are; the field is resampled at the new
    pixel centres (``align_corners=True``, the pixel-centre convention of the flow).
    """
    tensor = torch.as_tensor(np.asarray(_numpy(flow), dtype=np.float32))
    if tensor.shape[1:3] == (height, width):
        return tensor
    resized = F.interpolate(tensor.permute(0, 3, 1, 2), size=(height, width), mode="bilinear", align_corners=True)
    return resized.permute(0, 2, 3, 1).contiguous()
