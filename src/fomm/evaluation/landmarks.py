"""A small landmark detector trained on synthetic ground truth, for the AKD / MKR metrics.

The papers measure animation quality with an *external* landmark detector (a face-alignment
network for VoxCeleb, OpenPose for Tai-Chi): landmarks are detected on the generated frame and on
the driving frame it should reproduce, and compared (:func:`fomm.evaluation.metrics.compare_landmarks`).
Any detector fits the :class:`~fomm.evaluation.metrics.LandmarkDetector` protocol:

    frames (T, 3, H, W) float in [0, 1]  ->  Detections(points (T, J, 2), detected (T, J) bool)

with points (x, y) in [-1, 1] in the pixel-centre convention of the rest of the package (-1 and 1
are the centres of the corner pixels).

For the synthetic datasets, whose videos carry ground-truth keypoints and visibility
(:mod:`fomm.data.synthetic`), :func:`train_landmark_detector` fits :class:`LandmarkNet`, a small
CNN: a U-Net-like encoder/decoder to one heatmap per joint at quarter resolution, the joint position
being the soft-argmax of its heatmap, plus a visibility logit per joint computed from the decoder
features pooled under that joint's heatmap and the global image features. A joint counts as
detected when its predicted visibility exceeds 0.5. :func:`save_landmark_detector` writes one
(with its own small config embedded, atomically); :func:`load_landmark_detector` loads it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.datasets import dataset_folder, list_videos
from ..data.synthetic.writer import ground_truth_path, load_ground_truth, read_meta
from ..data.video import read_video
from ..errors import CheckpointError, DataError, UserError
from ..files import atomic_torch_save
from .metrics import Detections, landmark_error

logger = logging.getLogger(__name__)

FORMAT_NAME = "fomm-landmarks"
FORMAT_VERSION = 1

#: Largest test error (mean distance over visible joints on the detector's own test split, % of
#: the image width) of a detector that AKD and MKR are computed with
#: (:func:`fomm.evaluation.evaluate_dataset` refuses a weaker one unless told otherwise).
#:
#: Why 5 %: a detector that ignores the image and answers the mean pose of the train split for
#: every frame scores about 8.6 % on sprites-64 (measured on 30 train / 10 test videos), and its
#: AKD is 0 px because it answers the same for the generated and the driving frame; weak detectors
#: fail the same way, towards small AKDs that look like good animation. The well-trained ones of
#: the docs reach 1.9 % (10 epochs on 200 videos) and 3.8 % (10 epochs on 32 videos). 5 % keeps
#: those and refuses any detector closer to the blind guess than to them; at 64x64 it is 3.2 px
#: per landmark, already the size of the AKDs being compared (2.8 px for the bundled model).
MAX_DETECTOR_TEST_ERROR = 5.0
#: The key of a detector's ``metrics`` that holds its test error in % of width.
TEST_ERROR_KEY = "test_error_percent_width"

__all__ = [
    "MAX_DETECTOR_TEST_ERROR",
    "TEST_ERROR_KEY",
    "LandmarkConfig",
    "LandmarkData",
    "LandmarkNet",
    "LandmarkTrainingResult",
    "TrainedLandmarkDetector",
    "cell_centres",
    "detector_test_error",
    "load_landmark_data",
    "load_landmark_detector",
    "save_landmark_detector",
    "train_landmark_detector",
]


# --------------------------------------------------------------------------------------------
# the network


@dataclass
class LandmarkConfig:
    """What builds a :class:`LandmarkNet` and how it was trained (embedded in its file).

    ``size``: input side in pixels (frames are resized to ``size x size``); ``width``: channels of
    the first stage (later stages have 2x and 4x); ``num_joints``: J. The rest records training.
    """

    num_joints: int
    size: int = 64
    width: int = 16
    joint_names: list[str] = field(default_factory=list)
    dataset_kind: Optional[str] = None
    epochs: int = 0
    seed: int = 0


def _conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def cell_centres(cells: int, size: int) -> Tensor:
    """Normalised coordinates ``(cells,)`` of the centres of ``cells`` equal cells across ``size``
    pixels.

    Cell ``i`` covers pixels ``[i s, (i + 1) s)`` with ``s = size / cells``; its centre is at pixel
    ``(i + 0.5) s - 0.5`` (pixel centres at integers), in [-1, 1] that is ``2 c / (size - 1) - 1``.
    Using these rather than a -1..1 grid keeps soft-argmax unbiased at a coarser resolution.
    """
    centre = (torch.arange(cells, dtype=torch.float32) + 0.5) * (size / cells) - 0.5
    return 2 * centre / max(size - 1, 1) - 1


class LandmarkNet(nn.Module):
    """``(B, 3, S, S)`` in [0, 1] -> ``(points (B, J, 2) in [-1, 1], visibility logits (B, J),
    heatmaps (B, J, S/4, S/4))``.

    Encoder: S/2 (w channels), S/4 (2w), S/8 (4w), S/16 (4w); decoder back to S/4 with skips
    (heatmaps at S/4 keep it cheap on a CPU: 4-pixel cells at 64x64, and soft-argmax interpolates
    between cells). Each joint's point is the expectation of the cell-centre coordinates under the
    softmax of its heatmap logits (differentiable, sub-pixel). Its visibility logit is a per-joint
    linear function of the decoder features averaged under its heatmap together with the globally
    pooled bottleneck features (occlusion depends on what lies at the joint and on the pose).
    """

    def __init__(self, config: LandmarkConfig) -> None:
        super().__init__()
        if config.size % 16:
            raise ValueError(f"landmark detector size must be a multiple of 16, got {config.size}")
        self.config = config
        w = config.width
        self.enc1 = _conv(3, w, 2)                                              # S/2
        self.enc2 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))      # S/4
        self.enc3 = nn.Sequential(_conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w))  # S/8
        self.enc4 = nn.Sequential(_conv(4 * w, 4 * w, 2), _conv(4 * w, 4 * w))  # S/16
        self.dec3 = _conv(8 * w, 4 * w)
        self.dec2 = _conv(6 * w, 2 * w)
        self.heatmap = nn.Conv2d(2 * w, config.num_joints, 1)
        feature_size = 2 * w + 4 * w
        self.visibility_weight = nn.Parameter(torch.randn(config.num_joints, feature_size) / math.sqrt(feature_size))
        self.visibility_bias = nn.Parameter(torch.zeros(config.num_joints))
        cells = config.size // 4
        centres = cell_centres(cells, config.size)
        grid = torch.stack([centres.view(1, -1).expand(cells, cells), centres.view(-1, 1).expand(cells, cells)], -1)
        self.register_buffer("grid", grid, persistent=False)

    @staticmethod
    def _up_cat(low: Tensor, skip: Tensor) -> Tensor:
        return torch.cat([F.interpolate(low, size=skip.shape[2:], mode="bilinear", align_corners=False), skip], 1)

    def features(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Decoder features ``(B, 2w, S/4, S/4)`` and bottleneck features ``(B, 4w, S/16, S/16)``."""
        x2 = self.enc2(self.enc1(images * 2 - 1))
        x3 = self.enc3(x2)
        x4 = self.enc4(x3)
        decoded = self.dec2(self._up_cat(self.dec3(self._up_cat(x4, x3)), x2))
        return decoded, x4

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        decoded, bottleneck = self.features(images)
        logits = self.heatmap(decoded)
        batch, joints, height, width = logits.shape
        heatmap = F.softmax(logits.view(batch, joints, -1), dim=-1).view(batch, joints, height, width)
        points = torch.einsum("bjhw,hwc->bjc", heatmap, self.grid)
        local = torch.einsum("bjhw,bchw->bjc", heatmap, decoded)
        pooled = bottleneck.mean(dim=(2, 3))[:, None, :].expand(batch, joints, -1)
        visibility = (torch.cat([local, pooled], -1) * self.visibility_weight).sum(-1) + self.visibility_bias
        return points, visibility, heatmap


def detector_test_error(detector: object) -> Optional[float]:
    """The test error (% of width) a landmark detector recorded about itself: the
    ``metrics["test_error_percent_width"]`` of a :class:`TrainedLandmarkDetector` (or of any
    detector with such a ``metrics`` dict); None when there is none or it is not a finite number
    (a detector of the user's own, an untrained one, a test split without visible joints)."""
    metrics = getattr(detector, "metrics", None)
    value = metrics.get(TEST_ERROR_KEY) if isinstance(metrics, dict) else None
    try:
        value = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) else None


def _resize(frames: Tensor, size: int) -> Tensor:
    """``(T, 3, H, W)`` -> ``(T, 3, size, size)`` (area-averaging when shrinking)."""
    if frames.shape[-2:] == (size, size):
        return frames
    return F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


class TrainedLandmarkDetector:
    """A :class:`LandmarkNet` as a :class:`~fomm.evaluation.metrics.LandmarkDetector`: frames of
    any size are resized to the network's input size; ``detected`` is
    ``sigmoid(visibility logit) > 0.5``."""

    def __init__(self, net: LandmarkNet, device: Optional[torch.device] = None, batch_size: int = 64,
                 metrics: Optional[dict] = None) -> None:
        self.device = device or torch.device("cpu")
        self.net = net.eval().to(self.device)
        self.batch_size = batch_size
        self.metrics = metrics or {}

    @property
    def config(self) -> LandmarkConfig:
        return self.net.config

    @torch.inference_mode()
    def predict(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """Points ``(T, J, 2)`` and visibility probabilities ``(T, J)``, on the CPU."""
        points, probabilities = [], []
        for batch in frames.split(self.batch_size):
            p, v, _ = self.net(_resize(batch.to(self.device).float(), self.config.size))
            points.append(p.cpu())
            probabilities.append(torch.sigmoid(v).cpu())
        return torch.cat(points), torch.cat(probabilities)

    def __call__(self, frames: Tensor) -> Detections:
        points, probabilities = self.predict(frames)
        return Detections(points.numpy().astype(np.float64), (probabilities > 0.5).numpy())


# --------------------------------------------------------------------------------------------
# data


@dataclass
class LandmarkData:
    """Frames with ground truth: ``frames`` ``(N, 3, S, S)`` uint8, ``points`` ``(N, J, 2)``
    float32 in [-1, 1], ``visible`` ``(N, J)`` bool; ``videos`` counts the videos."""

    frames: Tensor
    points: Tensor
    visible: Tensor
    videos: int


def _split_folder(root: Path, split: str) -> Path:
    folder = dataset_folder(root) / split
    if not folder.is_dir():
        raise DataError(f"{folder}: no '{split}' folder (a synthetic dataset has train/ and test/; "
                        f"make one with `fomm make-dataset`)")
    return folder


def load_landmark_data(root: str | Path, split: str, size: int, max_videos: Optional[int] = None) -> LandmarkData:
    """Every frame of the ``split`` videos of a dataset with ground truth, resized to ``size``.

    Raises DataError for a missing folder, no videos, or videos without ground truth.
    """
    folder = _split_folder(Path(root), split)
    videos = list_videos(folder)[:max_videos]
    if not videos:
        raise DataError(f"{folder}: no videos")
    frames, points, visible = [], [], []
    for path in videos:
        if not ground_truth_path(path).is_file():
            raise DataError(f"{path}: no ground-truth keypoints ({ground_truth_path(path).name}); "
                            "landmark training needs a synthetic dataset (`fomm make-dataset`)")
        truth = load_ground_truth(path)
        video = read_video(path, (size, size, 3))
        if len(video) != len(truth.keypoints):
            raise DataError(f"{path}: {len(video)} frames but ground truth for {len(truth.keypoints)}")
        frames.append(torch.from_numpy(video).permute(0, 3, 1, 2))
        points.append(torch.from_numpy(np.asarray(truth.keypoints, dtype=np.float32)))
        visible.append(torch.from_numpy(np.asarray(truth.visibility, dtype=bool)))
    joints = {p.shape[1] for p in points}
    if len(joints) != 1:
        raise DataError(f"{folder}: videos have different numbers of keypoints {sorted(joints)}")
    # Frames stay uint8 until a batch is drawn: 4x less memory for large datasets.
    return LandmarkData(torch.cat(frames), torch.cat(points), torch.cat(visible), len(videos))


# --------------------------------------------------------------------------------------------
# training


@dataclass
class LandmarkTrainingResult:
    """What :func:`train_landmark_detector` reports. Errors are mean distances over visible joints
    of the test split, in % of the image width (see :func:`~fomm.evaluation.metrics.landmark_error`);
    ``visibility_accuracy`` is the share of test (frame, joint) pairs whose detected flag equals the
    ground-truth visibility. ``initial_*`` are the untrained network's numbers, for comparison."""

    detector: TrainedLandmarkDetector
    test_error: float
    initial_test_error: float
    train_error: float
    visibility_accuracy: float
    train_frames: int
    test_frames: int
    epochs: int
    seconds: float
    losses: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        return {"test_error_percent_width": self.test_error, "initial_test_error_percent_width": self.initial_test_error,
                "train_error_percent_width": self.train_error, "visibility_accuracy": self.visibility_accuracy,
                "train_frames": self.train_frames, "test_frames": self.test_frames, "epochs": self.epochs,
                "seconds": self.seconds}


def _to_float(frames: Tensor) -> Tensor:
    return frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()


def _score(detector: TrainedLandmarkDetector, data: LandmarkData) -> tuple[float, float]:
    """(mean error in % of width over visible joints, visibility accuracy) on ``data``."""
    points, probabilities = [], []
    for batch in data.frames.split(256):
        p, v = detector.predict(_to_float(batch))
        points.append(p)
        probabilities.append(v)
    points_all, visible_pred = torch.cat(points), torch.cat(probabilities) > 0.5
    size = detector.config.size
    error = landmark_error(points_all, data.points, data.visible, size)
    accuracy = float((visible_pred == data.visible).float().mean())
    return error, accuracy


def _loss(net: LandmarkNet, frames: Tensor, points: Tensor, visible: Tensor) -> Tensor:
    """L1 on the positions of visible joints (normalised units) + 0.1 x visibility BCE.

    Positions of occluded or out-of-frame joints are not penalised: they are not what a detector
    is asked to find, and the visibility head learns to flag them instead.
    """
    predicted, logits, _ = net(frames)
    mask = visible.float()
    position = ((predicted - points).abs().sum(-1) * mask).sum() / mask.sum().clamp_min(1)
    return position + 0.1 * F.binary_cross_entropy_with_logits(logits, mask)


def _augment(frames: Tensor, generator: torch.Generator) -> Tensor:
    """Mild photometric jitter (brightness, contrast) per image; geometry is left alone so the
    ground truth stays exact (a left-right flip would also swap joint identities)."""
    batch = frames.shape[0]
    brightness = (torch.rand(batch, 1, 1, 1, generator=generator) - 0.5) * 0.2
    contrast = 1 + (torch.rand(batch, 1, 1, 1, generator=generator) - 0.5) * 0.3
    mean = frames.mean(dim=(1, 2, 3), keepdim=True)
    return ((frames - mean) * contrast + mean + brightness).clamp(0, 1)


def train_landmark_detector(
    dataset: str | Path,
    epochs: int = 10,
    seed: int = 0,
    batch_size: int = 32,
    learning_rate: float = 2e-3,
    width: int = 16,
    size: Optional[int] = None,
    max_videos: Optional[int] = None,
    device: Optional[torch.device] = None,
    on_epoch: Optional[Callable[[int, float], object]] = None,
) -> LandmarkTrainingResult:
    """Train a :class:`LandmarkNet` on the train split of a synthetic dataset; report on its test split.

    ``size`` defaults to the dataset's frame size from ``meta.json`` (64 when unknown), rounded up
    to a multiple of 16. Adam with a cosine learning-rate decay; ``seed`` fixes initialisation and
    batch order. ``on_epoch(epoch, mean_loss)`` is called after each epoch.

    Raises UserError for ``epochs`` or ``batch_size`` below 1, DataError for a dataset that lacks
    a split, videos or ground truth.
    """
    if epochs < 1:
        raise UserError(f"epochs must be at least 1, got {epochs}")
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")
    start = time.perf_counter()
    root = Path(dataset)
    meta = read_meta(root)
    if size is None:
        size = int(meta.get("frame_shape", [64])[0])
    size = max(16, int(math.ceil(size / 16) * 16))
    train = load_landmark_data(root, "train", size, max_videos)
    test = load_landmark_data(root, "test", size)
    if train.points.shape[1] != test.points.shape[1]:
        raise DataError(f"{root}: train videos have {train.points.shape[1]} keypoints, test videos "
                        f"{test.points.shape[1]}")
    device = device or torch.device("cpu")
    torch.manual_seed(seed)
    config = LandmarkConfig(num_joints=int(train.points.shape[1]), size=size, width=width,
                            joint_names=list(meta.get("joint_names", [])), dataset_kind=meta.get("kind"),
                            epochs=epochs, seed=seed)
    net = LandmarkNet(config).to(device)
    detector = TrainedLandmarkDetector(net, device)
    initial_error, _ = _score(detector, test)

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
    steps_per_epoch = max(1, math.ceil(len(train.frames) / batch_size))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    losses = []
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(train.frames), generator=generator)
        total, count = 0.0, 0
        for index in order.split(batch_size):
            if len(index) < 2 and len(order) > 1:  # BatchNorm needs two samples
                continue
            frames = _augment(_to_float(train.frames[index]), generator).to(device)
            loss = _loss(net, frames, train.points[index].to(device), train.visible[index].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(index)
            count += len(index)
        losses.append(total / max(count, 1))
        logger.debug("landmark detector epoch %d/%d: loss %.4f", epoch + 1, epochs, losses[-1])
        if on_epoch is not None:
            on_epoch(epoch + 1, losses[-1])
    net.eval()
    test_error, accuracy = _score(detector, test)
    train_error, _ = _score(detector, train)
    detector.metrics = {TEST_ERROR_KEY: test_error, "visibility_accuracy": accuracy}
    if not test_error <= MAX_DETECTOR_TEST_ERROR:
        logger.warning("the landmark detector's test error is %.1f %% of width, above the %.1f %% that "
                       "`fomm evaluate` accepts for AKD and MKR: train it longer or on more videos",
                       test_error, MAX_DETECTOR_TEST_ERROR)
    return LandmarkTrainingResult(detector=detector, test_error=test_error, initial_test_error=initial_error,
                                  train_error=train_error, visibility_accuracy=accuracy,
                                  train_frames=len(train.frames), test_frames=len(test.frames), epochs=epochs,
                                  seconds=time.perf_counter() - start, losses=losses)


# --------------------------------------------------------------------------------------------
# saving and loading


def save_landmark_detector(path: str | Path, detector: TrainedLandmarkDetector) -> Path:
    """Atomically write the detector (config, weights, test metrics) to ``path``."""
    payload = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "config": asdict(detector.config),
               "state_dict": {k: v.detach().cpu() for k, v in detector.net.state_dict().items()},
               "metrics": dict(detector.metrics)}
    return atomic_torch_save(payload, Path(path))


def load_landmark_detector(path: str | Path, device: Optional[torch.device] = None) -> TrainedLandmarkDetector:
    """Load a detector written by :func:`save_landmark_detector` (``fomm train-landmarks``).

    Raises CheckpointError for a missing, unreadable or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"landmark detector not found: {path}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt files
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise CheckpointError(f"{path}: cannot read the landmark detector ({type(error).__name__}: "
                              f"{first_line})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not a landmark detector written by `fomm train-landmarks`")
    if int(raw.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer fomm (landmark format {raw['format_version']})")
    try:
        config = LandmarkConfig(**raw["config"])
        net = LandmarkNet(config)
        net.load_state_dict(raw["state_dict"], strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: landmark detector does not fit its config "
                              f"({str(error).splitlines()[0]})") from None
    return TrainedLandmarkDetector(net, device, metrics=raw.get("metrics", {}))
