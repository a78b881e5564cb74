"""Fréchet distance between the feature statistics of two sets of frames (FID, Heusel et al. 2017),
with a feature network the user supplies.

FID fits a Gaussian to the features of each set of frames and measures the Fréchet (2-Wasserstein)
distance between the two Gaussians:

    FID = ||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

The usual feature network is the 2048-d pool3 layer of an Inception-v3 trained on ImageNet. fomm
downloads nothing and ships no such weights: :func:`load_feature_network` loads a TorchScript
file that the user exported (``torch.jit.script`` or ``torch.jit.trace`` of a module, then
``.save(path)``) that maps frames ``(B, 3, H, W)`` float in [0, 1] to features ``(B, D)`` or
``(B, D, 1, 1)``. Whatever the network needs before its first layer (resizing to 299 x 299, the
ImageNet normalisation) belongs inside the exported module, so that the file alone defines the
numbers. Any callable with that contract works through :class:`FeatureNetwork` as well.

FID values depend on the network, the frame size and the number of frames (the estimate is
biased upwards for few frames, and the covariance is rank-deficient with no more frames than
feature dimensions): compare numbers only when all three are equal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

from ..errors import CheckpointError, DataError

logger = logging.getLogger(__name__)

__all__ = ["FeatureNetwork", "FeatureStatistics", "fid", "frechet_distance", "load_feature_network"]


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The positive semi-definite square root of a symmetric PSD ``matrix`` (eigenvalues that
    rounding made slightly negative count as 0)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between Gaussians ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``: means ``(D,)``,
    covariances ``(D, D)`` symmetric positive semi-definite.

    ``||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))``, where the last
    trace is computed as ``tr((A sigma2 A)^(1/2))`` with ``A = sigma1^(1/2)``: the two products are
    similar matrices, and the second one is symmetric PSD, so its square root comes from a real
    eigendecomposition (``eigh``). A general matrix square root (``scipy.linalg.sqrtm``) of the
    non-symmetric ``sigma1 sigma2`` gives the same trace but returns complex rounding noise when
    the covariances are singular, which they are whenever there are no more frames than feature
    dimensions. Never negative (rounding clamped at 0).

    Raises ValueError for shapes that do not fit.
    """
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    sigma1, sigma2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    dim = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu1.shape != (dim,) or mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(f"Fréchet distance needs means (D,) and covariances (D, D) of one D, got "
                         f"{mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}")
    root1 = _symmetric_sqrt((sigma1 + sigma1.T) / 2)
    product = root1 @ sigma2 @ root1
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0, None)).sum()
    distance = float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * cross)
    return max(distance, 0.0)


@dataclass
class FeatureStatistics:
    """Mean and covariance of feature vectors, accumulated batch by batch so that no set of
    frames or features has to be held at once.

    ``count`` vectors of dimension ``D``; ``mean`` ``(D,)``; ``scatter`` ``(D, D)`` the sum of
    outer products of the deviations from the mean. Batches are merged with the pairwise update of
    Chan et al. (exact, and stable where the naive sum of squares loses digits to large means).
    """

    count: int = 0
    mean: Optional[np.ndarray] = None
    scatter: Optional[np.ndarray] = None

    @classmethod
    def of(cls, features: np.ndarray | Tensor) -> "FeatureStatistics":
        """The statistics of ``features`` ``(N, D)``."""
        statistics = cls()
        statistics.add(features)
        return statistics

    def add(self, features: np.ndarray | Tensor) -> None:
        """Add feature vectors ``(N, D)`` (N may be 0)."""
        if isinstance(features, Tensor):
            features = features.detach().cpu().double().numpy()
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or (self.mean is not None and features.shape[1] != self.mean.shape[0]):
            expected = f"(N, {self.mean.shape[0]})" if self.mean is not None else "(N, D)"
            raise ValueError(f"features must be {expected}, got {features.shape}")
        if len(features) == 0:
            return
        mean = features.mean(axis=0)
        deviation = features - mean
        scatter = deviation.T @ deviation
        if self.mean is None or self.scatter is None:
            self.count, self.mean, self.scatter = len(features), mean, scatter
        else:
            total = self.count + len(features)
            delta = mean - self.mean
            self.scatter = self.scatter + scatter + np.outer(delta, delta) * (self.count * len(features) / total)
            self.mean = self.mean + delta * (len(features) / total)
            self.count = total

    @property
    def dimension(self) -> int:
        return 0 if self.mean is None else int(self.mean.shape[0])

    @property
    def covariance(self) -> np.ndarray:
        """The unbiased sample covariance ``(D, D)`` (divided by ``count - 1``).

        Raises DataError with fewer than 2 vectors (no covariance to speak of)."""
        if self.scatter is None or self.count < 2:
            raise DataError(f"FID needs at least 2 frames per set, got {self.count}")
        return self.scatter / (self.count - 1)

    def frechet_distance(self, other: "FeatureStatistics") -> float:
        """:func:`frechet_distance` between these statistics and ``other``'s.

        Raises DataError with fewer than 2 vectors on either side, ValueError for different
        feature dimensions."""
        first, second = self.covariance, other.covariance  # checks the counts
        assert self.mean is not None and other.mean is not None
        if max(self.count, other.count) <= self.dimension:
            logger.warning("FID from %d and %d frames of %d-d features: the covariances are rank-deficient and "
                           "the value is far from its large-sample limit; compare only with equal frame counts",
                           self.count, other.count, self.dimension)
        return frechet_distance(self.mean, first, other.mean, second)


class FeatureNetwork:
    """A feature network for FID: frames ``(B, 3, H, W)`` float in [0, 1] -> features ``(B, D)``.

    ``module``: any callable from frames to a tensor ``(B, D)`` or ``(B, D, 1, 1)`` (a loaded
    TorchScript module, an ``nn.Module``, which is put in eval mode and moved to ``device``);
    ``name`` names it in messages and in the results; frames go through it ``batch_size`` at a
    time on ``device`` (default: the CPU). Every output is checked (shape,
    finite values): a network that returns a feature map instead of a pooled vector fails with
    CheckpointError rather than yielding a number.
    """

    def __init__(self, module: Callable[[Tensor], Tensor], name: str = "feature network",
                 device: Optional[torch.device] = None, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self.module = module
        self.name = name
        self.device = device or torch.device("cpu")
        self.batch_size = batch_size
        if isinstance(module, torch.nn.Module):
            module.eval().to(self.device)

    def __call__(self, frames: Tensor) -> Tensor:
        """Features ``(T, D)`` float64 on the CPU of ``frames`` ``(T, 3, H, W)`` in [0, 1]."""
        outputs = [self._features(batch) for batch in frames.split(self.batch_size)]
        return torch.cat(outputs) if outputs else torch.zeros(0, 0, dtype=torch.float64)

    @torch.inference_mode()
    def _features(self, batch: Tensor) -> Tensor:
        try:
            output = self.module(batch.to(self.device, torch.float32))
        except RuntimeError as error:  # TorchScript reports shape and dtype problems as RuntimeError
            first_line = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
            raise CheckpointError(f"{self.name}: the feature network failed on frames "
                                  f"{tuple(batch.shape)} ({first_line})") from None
        if not isinstance(output, Tensor):
            raise CheckpointError(f"{self.name}: the feature network returned {type(output).__name__}, "
                                  "not a tensor of features (B, D)")
        if output.ndim == 4 and output.shape[2:] == (1, 1):
            output = output.flatten(1)
        if output.ndim != 2 or output.shape[0] != len(batch):
            raise CheckpointError(f"{self.name}: the feature network returned shape {tuple(output.shape)} for "
                                  f"{len(batch)} frames; FID needs features (B, D) or (B, D, 1, 1) "
                                  "(pool the feature map to 1x1 inside the network)")
        output = output.detach().to("cpu", torch.float64)
        if not torch.isfinite(output).all():
            raise CheckpointError(f"{self.name}: the feature network returned NaN or infinite features")
        return output

    def check(self, height: int, width: int) -> int:
        """Run the network on two grey ``height x width`` frames and return its feature dimension
        ``D``: a network that does not fit fails here, before a long evaluation.

        Raises CheckpointError as :meth:`__call__` does."""
        return int(self(torch.full((2, 3, height, width), 0.5)).shape[1])

    def statistics(self, frames: Tensor, into: Optional[FeatureStatistics] = None,
                   batch_size: Optional[int] = None) -> FeatureStatistics:
        """The feature statistics of ``frames`` ``(T, 3, H, W)``, ``batch_size`` (default: the
        network's) frames at a time, added to ``into`` when given."""
        statistics = into if into is not None else FeatureStatistics()
        for batch in frames.split(batch_size or self.batch_size):
            statistics.add(self._features(batch))
        return statistics


def load_feature_network(path: str | Path, device: Optional[torch.device] = None,
                         batch_size: int = 32) -> FeatureNetwork:
    """Load a TorchScript feature network (see the module docstring for its contract).

    Raises CheckpointError for a missing file or one that is not a TorchScript module (a
    ``torch.save`` state dict, a checkpoint, anything else).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"feature network not found: {path}")
    try:
        module = torch.jit.load(str(path), map_location=device or torch.device("cpu"))
    except Exception as error:  # torch raises RuntimeError, ValueError, pickle errors... for foreign files
        first_line = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise CheckpointError(f"{path}: not a TorchScript module (export the network with torch.jit.script or "
                              f"torch.jit.trace and .save(); {type(error).__name__}: {first_line})") from None
    return FeatureNetwork(module, name=path.name, device=device, batch_size=batch_size)


def fid(network: FeatureNetwork | Callable[[Tensor], Tensor], generated_frames: Tensor, real_frames: Tensor,
        batch_size: Optional[int] = None) -> float:
    """FID between ``generated_frames`` and ``real_frames`` (each ``(N, 3, H, W)`` in [0, 1], any
    ``N >= 2``; the two counts may differ) with the features of ``network`` (a
    :class:`FeatureNetwork` or any callable it accepts), ``batch_size`` frames at a time (default:
    the network's, 32 for a plain callable).

    Raises DataError for fewer than 2 frames in a set, CheckpointError for a network whose output
    is not ``(B, D)`` or ``(B, D, 1, 1)``.
    """
    for name, frames in (("generated", generated_frames), ("real", real_frames)):
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise DataError(f"FID needs {name} frames (N, 3, H, W), got {tuple(frames.shape)}")
        if len(frames) < 2:
            raise DataError(f"FID needs at least 2 {name} frames, got {len(frames)}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if not isinstance(network, FeatureNetwork):
        network = FeatureNetwork(network)
    generated = network.statistics(generated_frames, batch_size=batch_size)
    return generated.frechet_distance(network.statistics(real_frames, batch_size=batch_size))
