"""Shared pieces of the synthetic datasets: the result type, seeding, coordinates, trajectories.

Coordinate convention (same as the rest of ``fomm`` and ``F.grid_sample(align_corners=True)``):
a point is ``(x, y)`` in ``[-1, 1]``, where -1 and 1 are the *centres* of the corner pixels, i.e.
``x = 2 * col / (W - 1) - 1`` and ``y = 2 * row / (H - 1) - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...geometry import pixel_scale

#: Stable per-kind codes mixed into the seed, so that two kinds never share a random stream.
KIND_CODES: dict[str, int] = {"sprites": 1, "warped-photos": 2}


@dataclass
class SyntheticVideo:
    """One generated video and its ground truth.

    Attributes:
        name: file stem, e.g. ``sprite00012``.
        frames: ``(T, H, W, 3)`` uint8 RGB frames.
        keypoints: ``(T, J, 2)`` float32 ``(x, y)`` in [-1, 1] (values outside mean out of frame).
        visibility: ``(T, J)`` bool; False where the point is occluded or out of frame.
        flow: ``(T, H, W, 2)`` float32 backward flow to frame 0 (warped photos only, else None);
            ``flow[t, row, col]`` is the ``(x, y)`` position in frame 0 that pixel ``(row, col)``
            of frame ``t`` shows, so ``grid_sample(frame0, flow[t], align_corners=True)`` ≈ frame t.
        labels: ``(T, H, W)`` uint8 part-label maps (sprites, when requested; 0 = background,
            ``k`` = part ``k - 1``), else None.
    """

    name: str
    frames: np.ndarray
    keypoints: np.ndarray
    visibility: np.ndarray
    flow: np.ndarray | None = None
    labels: np.ndarray | None = None


def video_rng(seed: int, kind: str, index: int) -> np.random.Generator:
    """Random generator for video ``index`` of ``kind``; depends only on ``(seed, kind, index)``.

    Keyed seeding (rather than one stream consumed video after video) is what makes the first
    ``k`` videos identical whether 10 or 200 are generated, and lets workers run in any order.
    """
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), KIND_CODES[kind], int(index)]))


def pixel_to_norm(pix: np.ndarray, size: int) -> np.ndarray:
    """Pixel coordinate (col or row, pixel centres at integers) -> normalised [-1, 1]."""
    return np.asarray(pix, dtype=np.float64) / pixel_scale(size, size)[0] - 1.0


@dataclass
class SmoothTrajectory:
    """A sum of a few sinusoids per channel: smooth, bounded, and defined for any frame count.

    ``value(t) = offset + sum_k amp[k] * sin(2*pi*freq[k]*t + phase[k])`` (per channel). The
    parameters are drawn independently of the number of frames, so a longer video continues a
    shorter one with the same seed instead of becoming a different video.

    Attributes:
        offset: ``(C,)`` rest value per channel.
        amp: ``(C, K)`` amplitudes.
        freq: ``(C, K)`` frequencies in cycles per frame.
        phase: ``(C, K)`` phases in radians.
    """

    offset: np.ndarray
    amp: np.ndarray
    freq: np.ndarray
    phase: np.ndarray

    @classmethod
    def sample(
        cls,
        rng: np.random.Generator,
        offset: np.ndarray,
        amplitude: np.ndarray,
        components: int = 3,
        min_period: float = 14.0,
        max_period: float = 80.0,
    ) -> SmoothTrajectory:
        """Draw a trajectory with per-channel peak amplitude about ``amplitude`` (shape ``(C,)``).

        Periods are drawn log-uniformly in ``[min_period, max_period]`` frames; the amplitude is
        split over the components with random weights that sum to one, so
        ``|value - offset| <= amplitude`` always.
        """
        offset = np.atleast_1d(np.asarray(offset, dtype=np.float64))
        amplitude = np.broadcast_to(np.asarray(amplitude, dtype=np.float64), offset.shape)
        channels = offset.shape[0]
        weights = rng.dirichlet(np.ones(components), size=channels)
        period = np.exp(rng.uniform(np.log(min_period), np.log(max_period), (channels, components)))
        phase = rng.uniform(0.0, 2.0 * np.pi, (channels, components))
        return cls(offset, weights * amplitude[:, None], 1.0 / period, phase)

    def __call__(self, t: np.ndarray | float) -> np.ndarray:
        """Values at frame(s) ``t``: shape ``(C,)`` for scalar ``t`` or ``(N, C)`` for ``(N,)``."""
        t_arr = np.asarray(t, dtype=np.float64)
        angle = 2.0 * np.pi * self.freq * t_arr[..., None, None] + self.phase
        return self.offset + (self.amp * np.sin(angle)).sum(-1)


@dataclass
class TransferredTrajectory:
    """Another trajectory's motion, started from a given value: ``start + motion(t) - motion(0)``.

    This is relative motion transfer in the space of the generating parameters: the amplitudes,
    frequencies and phases of ``motion`` are kept, its rest value is shifted so that frame 0 is
    ``start``. The value at ``t = 0`` is set to ``start`` exactly (not recomputed through sines),
    so a video rendered from it begins with the very frame that ``start`` belongs to.

    Attributes:
        motion: the trajectory whose motion is taken.
        start: ``(C,)`` the value at frame 0.
    """

    motion: SmoothTrajectory
    start: np.ndarray

    def __call__(self, t: np.ndarray | float) -> np.ndarray:
        """Values at frame(s) ``t``: shape ``(C,)`` for scalar ``t`` or ``(N, C)`` for ``(N,)``."""
        t_arr = np.asarray(t, dtype=np.float64)
        values = self.start + (self.motion(t_arr) - self.motion(0.0))
        values[t_arr == 0] = self.start
        return values


def random_colour(rng: np.random.Generator, sat: tuple[float, float] = (0.35, 1.0),
                  val: tuple[float, float] = (0.25, 1.0)) -> np.ndarray:
    """A random RGB colour ``(3,)`` in [0, 1], drawn in HSV so saturation/brightness are controlled."""
    h = rng.uniform(0.0, 1.0)
    s = rng.uniform(*sat)
    v = rng.uniform(*val)
    return hsv_to_rgb(h, s, v)


def hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    """Convert one HSV colour (each in [0, 1]) to RGB ``(3,)`` float64 in [0, 1]."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, w = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = [(v, w, p), (q, v, p), (p, v, w), (p, q, v), (w, p, v), (v, p, q)]
    return np.array(table[i], dtype=np.float64)
