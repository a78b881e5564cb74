"""Training augmentation of the original configs, one random draw per sample.

The original ``AllAugmentationTransform`` applies, in this order: flip (horizontal and/or in
time), rotation, resize, crop and colour jitter. Every transform draws its random parameters
once and applies them to all the frames of a sample, so the source and driving frames stay
consistent with each other (the model must learn motion, not augmentation noise).

Frames are ``(T, H, W, 3)`` float arrays in [0, 1]; the output is float32 in [0, 1] of shape
``(T, frame_shape[0], frame_shape[1], 3)``: where resize or crop change the size the frames are
centre-padded (zeros) or centre-cropped back. All randomness comes from the
``numpy.random.Generator`` passed in, so a seeded generator reproduces a sample exactly.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import cv2
import numpy as np

from ..config import AugmentationParams, CropParams, FlipParams, JitterParams, ResizeParams, RotationParams

__all__ = [
    "Augmentation",
    "RandomFlip",
    "RandomRotation",
    "RandomResize",
    "RandomCrop",
    "ColorJitter",
    "fit_to_size",
    "rgb_to_hsv",
    "hsv_to_rgb",
]

Frames = np.ndarray  # (T, H, W, 3) float32 in [0, 1]


def _stack(frames: Union[np.ndarray, Sequence[np.ndarray]]) -> Frames:
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise ValueError(f"expected frames (T, H, W, 3), got shape {frames.shape}")
    return frames


def _pad_or_crop_axis(frames: Frames, axis: int, size: int, start: Optional[int] = None) -> Frames:
    """Make ``frames.shape[axis] == size``: zero-pad both sides evenly, or crop at ``start``
    (centre when None)."""
    current = frames.shape[axis]
    if current < size:
        before = (size - current) // 2
        padding = [(0, 0)] * frames.ndim
        padding[axis] = (before, size - current - before)
        return np.pad(frames, padding)
    if current > size:
        start = (current - size) // 2 if start is None else start
        return np.take(frames, np.arange(start, start + size), axis=axis)
    return frames


def fit_to_size(frames: Frames, height: int, width: int) -> Frames:
    """Centre-pad (zeros) or centre-crop ``(T, H, W, C)`` frames to ``(T, height, width, C)``."""
    return _pad_or_crop_axis(_pad_or_crop_axis(frames, 1, height), 2, width)


class RandomFlip:
    """Mirror left-right with probability 1/2 and/or reverse time with probability 1/2."""

    def __init__(self, horizontal_flip: bool = False, time_flip: bool = False) -> None:
        self.horizontal_flip = horizontal_flip
        self.time_flip = time_flip

    def __call__(self, frames: Frames, rng: np.random.Generator) -> Frames:
        # Draw both coins always, so the random stream does not depend on the options.
        mirror, reverse = rng.random(2) < 0.5
        if self.horizontal_flip and mirror:
            frames = frames[:, :, ::-1]
        if self.time_flip and reverse:
            frames = frames[::-1]
        return np.ascontiguousarray(frames)


class RandomRotation:
    """Rotate about the centre by an angle uniform in [-degrees, degrees]; corners fill with 0
    (black), as the original did."""

    def __init__(self, degrees: float) -> None:
        self.degrees = abs(float(degrees))

    def __call__(self, frames: Frames, rng: np.random.Generator) -> Frames:
        angle = rng.uniform(-self.degrees, self.degrees)
        if self.degrees == 0:
            return frames
        height, width = frames.shape[1:3]
        matrix = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), angle, 1.0)
        rotated = [
            cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)
            for frame in frames
        ]
        return _stack([frame.reshape(height, width, -1) for frame in rotated])


class RandomResize:
    """Scale both sides by a factor uniform in [ratio[0], ratio[1]] (anti-aliased when shrinking)."""

    def __init__(self, ratio: Sequence[float]) -> None:
        low, high = float(ratio[0]), float(ratio[1])
        if not 0 < low <= high:
            raise ValueError(f"resize ratio must satisfy 0 < low <= high, got {list(ratio)}")
        self.ratio = (low, high)

    def __call__(self, frames: Frames, rng: np.random.Generator) -> Frames:
        scale = rng.uniform(*self.ratio)
        height, width = frames.shape[1:3]
        new_height, new_width = max(1, round(height * scale)), max(1, round(width * scale))
        if (new_height, new_width) == (height, width):
            return frames
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = [cv2.resize(frame, (new_width, new_height), interpolation=interpolation) for frame in frames]
        return _stack([frame.reshape(new_height, new_width, -1) for frame in resized])


class RandomCrop:
    """Crop a random ``size = (height, width)`` window, zero-padding first where frames are
    smaller than it."""

    def __init__(self, size: Sequence[int]) -> None:
        self.size = (int(size[0]), int(size[1]))

    def __call__(self, frames: Frames, rng: np.random.Generator) -> Frames:
        out_height, out_width = self.size
        frames = _pad_or_crop_axis(frames, 1, max(out_height, frames.shape[1]))
        frames = _pad_or_crop_axis(frames, 2, max(out_width, frames.shape[2]))
        top = int(rng.integers(0, frames.shape[1] - out_height + 1))
        left = int(rng.integers(0, frames.shape[2] - out_width + 1))
        return np.ascontiguousarray(frames[:, top : top + out_height, left : left + out_width])


class ColorJitter:
    """Random brightness, contrast, saturation and hue, in a random order, as torchvision's.

    Factors are uniform in ``[max(0, 1 - b), 1 + b]`` (same for contrast, saturation); the hue
    shift is uniform in ``[-hue, hue]`` turns of the colour wheel. Brightness scales pixels,
    contrast blends each frame with its mean gray level, saturation blends with the gray
    image, hue rotates H in HSV. One draw serves all frames.
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0, hue: float = 0.0):
        if not 0 <= hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {hue}")
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    @staticmethod
    def _factor(rng: np.random.Generator, amount: float) -> float:
        return float(rng.uniform(max(0.0, 1.0 - amount), 1.0 + amount))

    def __call__(self, frames: Frames, rng: np.random.Generator) -> Frames:
        factors = {
            "brightness": self._factor(rng, self.brightness),
            "contrast": self._factor(rng, self.contrast),
            "saturation": self._factor(rng, self.saturation),
            "hue": float(rng.uniform(-self.hue, self.hue)),
        }
        order = rng.permutation(4)
        operations = [
            ("brightness", self.brightness > 0, _adjust_brightness),
            ("contrast", self.contrast > 0, _adjust_contrast),
            ("saturation", self.saturation > 0, _adjust_saturation),
            ("hue", self.hue > 0, _adjust_hue),
        ]
        if frames.shape[-1] != 3:
            return frames  # colour jitter has no meaning for gray frames
        for position in order:
            name, enabled, operation = operations[position]
            if enabled:
                frames = operation(frames, factors[name])
        return frames.astype(np.float32, copy=False)


def _gray(frames: Frames) -> Frames:
    """ITU-R 601 luma, ``(..., 1)``."""
    return (frames @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]


def _blend(image: Frames, other: Frames, factor: float) -> Frames:
    return np.clip(factor * image + (1.0 - factor) * other, 0.0, 1.0)


def _adjust_brightness(frames: Frames, factor: float) -> Frames:
    return np.clip(frames * factor, 0.0, 1.0)


def _adjust_contrast(frames: Frames, factor: float) -> Frames:
    mean = _gray(frames).mean(axis=(1, 2, 3), keepdims=True)
    return _blend(frames, mean, factor)


def _adjust_saturation(frames: Frames, factor: float) -> Frames:
    return _blend(frames, _gray(frames), factor)


def _adjust_hue(frames: Frames, shift: float) -> Frames:
    hsv = rgb_to_hsv(frames)
    hsv[..., 0] = np.mod(hsv[..., 0] + shift, 1.0)
    return hsv_to_rgb(hsv)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] -> HSV with every channel in [0, 1]; any leading shape, channels last."""
    rgb = np.asarray(rgb, dtype=np.float32)
    maximum = rgb.max(axis=-1)
    minimum = rgb.min(axis=-1)
    delta = maximum - minimum
    safe_delta = np.where(delta > 0, delta, 1.0)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hue = np.where(
        maximum == red,
        (green - blue) / safe_delta,
        np.where(maximum == green, 2.0 + (blue - red) / safe_delta, 4.0 + (red - green) / safe_delta),
    )
    hue = np.where(delta > 0, np.mod(hue / 6.0, 1.0), 0.0)
    saturation = np.where(maximum > 0, delta / np.where(maximum > 0, maximum, 1.0), 0.0)
    return np.stack([hue, saturation, maximum], axis=-1).astype(np.float32)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_hsv`."""
    hsv = np.asarray(hsv, dtype=np.float32)
    hue, saturation, value = hsv[..., 0] * 6.0, hsv[..., 1], hsv[..., 2]
    # Each channel is value minus a chroma share that depends on its distance to the hue:
    # the standard piecewise-linear form, written without branches.
    def channel(offset: float) -> np.ndarray:
        k = np.mod(offset + hue, 6.0)
        return value - value * saturation * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)

    return np.stack([channel(5.0), channel(3.0), channel(1.0)], axis=-1).astype(np.float32)


class Augmentation:
    """All the configured transforms, in the original's order, plus a final fit to
    ``frame_shape`` so that batches always have the dataset's frame size.

    ``augmentation(frames, rng)``: ``frames`` ``(T, H, W, 3)`` (array or list of ``(H, W, 3)``)
    float in [0, 1] -> float32 ``(T, frame_shape[0], frame_shape[1], 3)`` in [0, 1].
    """

    def __init__(self, params: Optional[AugmentationParams], frame_shape: Sequence[int]) -> None:
        params = params or AugmentationParams()
        self.frame_shape = (int(frame_shape[0]), int(frame_shape[1]))
        self.transforms: list = []
        flip: Optional[FlipParams] = params.flip_param
        rotation: Optional[RotationParams] = params.rotation_param
        resize: Optional[ResizeParams] = params.resize_param
        crop: Optional[CropParams] = params.crop_param
        jitter: Optional[JitterParams] = params.jitter_param
        if flip is not None:
            self.transforms.append(RandomFlip(flip.horizontal_flip, flip.time_flip))
        if rotation is not None:
            self.transforms.append(RandomRotation(rotation.degrees))
        if resize is not None:
            self.transforms.append(RandomResize(resize.ratio))
        if crop is not None:
            self.transforms.append(RandomCrop(crop.size))
        if jitter is not None:
            self.transforms.append(ColorJitter(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue))

    def __call__(self, frames: Union[np.ndarray, Sequence[np.ndarray]], rng: np.random.Generator) -> Frames:
        frames = _stack(frames)
        for transform in self.transforms:
            frames = transform(frames, rng)
        frames = fit_to_size(frames, *self.frame_shape)
        return np.ascontiguousarray(np.clip(frames, 0.0, 1.0), dtype=np.float32)

    def __repr__(self) -> str:
        names = ", ".join(type(transform).__name__ for transform in self.transforms)
        return f"Augmentation([{names}] -> {self.frame_shape})"
