"""Procedural textures: random backgrounds and per-part surface patterns for the sprite figures.

Everything is drawn from a ``numpy.random.Generator`` up front (an appearance is a small bag of
numbers), and evaluated later at any resolution, so the same video rendered at 64 or 256 pixels
shows the same picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fomm.data.synthetic.common import random_colour

#: Pattern kinds of a part texture.
PATTERNS = ("plain", "stripes_across", "stripes_along", "checker", "rings")


@dataclass
class PartTexture:
    """Surface pattern of one body part, defined in the part's own coordinates.

    ``u`` runs along the part's axis and ``v`` across it, both in body units (normalised image
    units divided by the figure's global scale), so the pattern sticks to the part as it moves.

    Attributes:
        colour_a, colour_b: ``(3,)`` RGB in [0, 1]; the pattern blends between them.
        pattern: one of :data:`PATTERNS`.
        frequency: stripe frequency in cycles per body unit.
        phase: pattern phase in radians.
        noise: value-noise tile in [-1, 1] (an ``8 x 8`` period, padded by :func:`wrap_pad`).
        noise_scale: tiles per body unit.
        noise_amp: noise amplitude (added to all channels).
    """

    colour_a: np.ndarray
    colour_b: np.ndarray
    pattern: str
    frequency: float
    phase: float
    noise: np.ndarray
    noise_scale: float
    noise_amp: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> PartTexture:
        """Draw a random texture: two colours, a pattern and a noise tile."""
        colour_a = random_colour(rng)
        # The second colour is a shifted version of the first half the time, so some parts are
        # subtle and some bold; both kinds appear in real clothing.
        if rng.uniform() < 0.5:
            colour_b = random_colour(rng)
        else:
            colour_b = np.clip(colour_a * rng.uniform(0.4, 0.8) + rng.uniform(-0.1, 0.1, 3), 0, 1)
        return cls(
            colour_a=colour_a,
            colour_b=colour_b,
            pattern=PATTERNS[int(rng.integers(len(PATTERNS)))],
            frequency=float(rng.uniform(4.0, 10.0)),
            phase=float(rng.uniform(0.0, 2.0 * np.pi)),
            noise=wrap_pad(rng.uniform(-1.0, 1.0, (8, 8))),
            noise_scale=float(rng.uniform(4.0, 12.0)),
            noise_amp=float(rng.uniform(0.03, 0.12)),
        )

    def evaluate(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Colour at part coordinates ``u``, ``v`` (same shape ``S``) -> ``(*S, 3)`` float32."""
        w = np.float32(2.0 * np.pi * self.frequency)
        if self.pattern == "plain":
            mix = None
        elif self.pattern == "stripes_across":
            mix = np.sin(w * u + np.float32(self.phase))
        elif self.pattern == "stripes_along":
            mix = np.sin(w * v + np.float32(self.phase))
        elif self.pattern == "checker":
            mix = np.sin(w * u + np.float32(self.phase)) * np.sin(w * v)
        else:  # rings
            mix = np.sin(w * np.sqrt(u * u + v * v) + np.float32(self.phase))
        # Soft (clipped, scaled) sine edges instead of hard steps: hard steps alias at 64 px.
        if mix is None:
            colour = np.broadcast_to(self.colour_a.astype(np.float32), u.shape + (3,))
        else:
            m = np.clip(0.5 + 1.5 * mix, 0.0, 1.0, dtype=np.float32)[..., None]
            a = self.colour_a.astype(np.float32)
            colour = a + m * (self.colour_b.astype(np.float32) - a)
        scale = np.float32(self.noise_scale)
        noise = sample_tile(self.noise, u * scale, v * scale)
        return colour + (np.float32(self.noise_amp) * noise)[..., None]


def sample_tile(tile: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinearly sample a periodic tile at 2-D arrays of tile coordinates ``x``, ``y``.

    ``tile`` is ``(N + 1, N + 1)`` float32: an ``N x N`` period followed by a copy of its first
    row and column (see :func:`wrap_pad`), so wrapped coordinates in ``[0, N)`` interpolate
    across the seam exactly (cv2.remap's own BORDER_WRAP is inexact there).
    """
    n = tile.shape[0] - 1
    xs = np.mod(x, n, dtype=np.float32)
    ys = np.mod(y, n, dtype=np.float32)
    return cv2.remap(tile, xs, ys, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def wrap_pad(period: np.ndarray) -> np.ndarray:
    """``(N, N)`` period -> ``(N + 1, N + 1)`` float32 tile for :func:`sample_tile`."""
    return np.ascontiguousarray(np.pad(period, ((0, 1), (0, 1)), mode="wrap"), dtype=np.float32)


@dataclass
class Background:
    """A static random background: smooth colour gradient + soft blobs + fine grain.

    Attributes:
        corners: ``(3, 3, 3)`` RGB colours of a 3x3 control grid, interpolated smoothly.
        blob_centres: ``(B, 2)`` (x, y) in normalised units.
        blob_radii: ``(B,)`` gaussian sigmas in normalised units.
        blob_colours: ``(B, 3)`` RGB.
        blob_alpha: ``(B,)`` peak opacity.
        grain: fine noise tile in [-1, 1] (``48 x 48`` period, padded), stretched over the frame.
        grain_amp: amplitude of the grain.
    """

    corners: np.ndarray
    blob_centres: np.ndarray
    blob_radii: np.ndarray
    blob_colours: np.ndarray
    blob_alpha: np.ndarray
    grain: np.ndarray
    grain_amp: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Background:
        """Draw a background; kept less saturated than figures on average so figures stand out."""
        base = random_colour(rng, sat=(0.05, 0.6), val=(0.2, 0.95))
        corners = np.clip(base + rng.normal(0.0, 0.15, (3, 3, 3)), 0.0, 1.0)
        blobs = int(rng.integers(4, 12))
        return cls(
            corners=corners,
            blob_centres=rng.uniform(-1.1, 1.1, (blobs, 2)),
            blob_radii=rng.uniform(0.06, 0.35, blobs),
            blob_colours=np.stack([random_colour(rng, sat=(0.1, 0.8)) for _ in range(blobs)]),
            blob_alpha=rng.uniform(0.3, 0.9, blobs),
            grain=wrap_pad(rng.uniform(-1.0, 1.0, (48, 48))),
            grain_amp=float(rng.uniform(0.01, 0.06)),
        )

    def render(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Evaluate on the grid ``xs`` ``(W,)`` × ``ys`` ``(H,)`` (normalised) -> ``(H, W, 3)`` float32."""
        # Smooth gradient: bicubic-like interpolation of the 3x3 grid via separable smoothstep
        # weights, evaluated analytically so it is resolution independent.
        wx = _hat_weights(xs)  # (W, 3)
        wy = _hat_weights(ys)  # (H, 3)
        img = ((wy @ self.corners.reshape(3, 9)).reshape(-1, 3, 3).transpose(0, 2, 1)
               @ wx.T).transpose(0, 2, 1).astype(np.float32)  # (H, W, 3)
        X = xs[None, :]
        Y = ys[:, None]
        for (cx, cy), r, col, a in zip(self.blob_centres, self.blob_radii, self.blob_colours,
                                       self.blob_alpha):
            alpha = (a * np.exp(-((X - cx) ** 2 + (Y - cy) ** 2) / (2 * r * r))).astype(np.float32)
            img += alpha[..., None] * (col.astype(np.float32) - img)
        g = self.grain.shape[0] - 1
        grain = sample_tile(self.grain, np.broadcast_to((xs[None, :] + 1) * g / 2.2, img.shape[:2]),
                            np.broadcast_to((ys[:, None] + 1) * g / 2.2, img.shape[:2]))
        img += self.grain_amp * grain[..., None]
        return img


def _hat_weights(coords: np.ndarray) -> np.ndarray:
    """Weights ``(N, 3)`` of three smooth bumps centred at -1, 0, 1 (a partition of unity)."""
    t = np.clip((np.asarray(coords, dtype=np.float64) + 1.0) / 2.0, 0.0, 1.0) * 2.0  # [0, 2]
    w = np.zeros(t.shape + (3,))
    for k in range(3):
        d = np.clip(1.0 - np.abs(t - k), 0.0, 1.0)
        w[..., k] = d * d * (3 - 2 * d)  # smoothstep of the hat: C1 at the nodes
    return w / w.sum(-1, keepdims=True)
