"""Augmentation: one random draw per sample, applied identically to all its frames."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.color

from fomm.config import AugmentationParams
from fomm.data import Augmentation, ColorJitter, RandomFlip, hsv_to_rgb, rgb_to_hsv

SHAPE = (32, 32, 3)


def params(**sections) -> AugmentationParams:
    return AugmentationParams.model_validate(sections)


ALL = dict(
    flip_param={"horizontal_flip": True, "time_flip": True},
    rotation_param={"degrees": 15},
    resize_param={"ratio": [0.8, 1.2]},
    crop_param={"size": [32, 32]},
    jitter_param={"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.1},
)


def image(seed: int = 0, shape=SHAPE) -> np.ndarray:
    """A smooth random colour image in [0, 1] (blurred noise, so rotations are meaningful)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((shape[0] // 8, shape[1] // 8, 3))
    return np.kron(coarse, np.ones((8, 8, 1))).astype(np.float32)


def test_identical_frames_stay_identical_under_every_transform() -> None:
    augmentation = Augmentation(params(**ALL), SHAPE)
    frame = image()
    for seed in range(20):
        out = augmentation(np.stack([frame, frame]), np.random.default_rng(seed))
        assert out.shape == (2, *SHAPE) and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0
        np.testing.assert_array_equal(out[0], out[1])


def test_same_seed_same_output_different_seed_differs() -> None:
    augmentation = Augmentation(params(**ALL), SHAPE)
    frames = np.stack([image(0), image(1)])
    first = augmentation(frames, np.random.default_rng(3))
    np.testing.assert_array_equal(first, augmentation(frames, np.random.default_rng(3)))
    assert not np.array_equal(first, augmentation(frames, np.random.default_rng(4)))


def test_horizontal_flip_applies_to_all_frames() -> None:
    augmentation = Augmentation(params(flip_param={"horizontal_flip": True}), SHAPE)
    first = image(0)
    second = first * 0.5  # a different frame with a known relation to the first
    outcomes = set()
    for seed in range(16):
        out = augmentation(np.stack([first, second]), np.random.default_rng(seed))
        flipped = np.array_equal(out[0], first[:, ::-1])
        assert flipped or np.array_equal(out[0], first)
        np.testing.assert_allclose(out[1], out[0] * 0.5, atol=1e-6)  # flipped together
        outcomes.add(flipped)
    assert outcomes == {True, False}


def test_time_flip_reverses_frame_order() -> None:
    augmentation = Augmentation(params(flip_param={"time_flip": True}), SHAPE)
    frames = np.stack([image(0), image(1), image(2)])
    outcomes = set()
    for seed in range(16):
        out = augmentation(frames, np.random.default_rng(seed))
        reversed_ = np.array_equal(out, frames[::-1])
        assert reversed_ or np.array_equal(out, frames)
        outcomes.add(reversed_)
    assert outcomes == {True, False}


def test_rotation_keeps_shape_and_centre() -> None:
    augmentation = Augmentation(params(rotation_param={"degrees": 45}), SHAPE)
    flat = np.full((2, *SHAPE), 0.6, np.float32)
    for seed in range(5):
        out = augmentation(flat, np.random.default_rng(seed))
        assert out.shape == (2, *SHAPE)
        np.testing.assert_allclose(out[:, 12:20, 12:20], 0.6, atol=1e-5)  # centre unchanged
    rotated = [augmentation(flat, np.random.default_rng(seed)) for seed in range(20)]
    assert any(out[0, 0, 0, 0] == 0.0 for out in rotated)  # corners fill with black


@pytest.mark.parametrize("ratio", [(0.5, 0.5), (1.5, 1.5), (0.7, 1.3)])
def test_resize_returns_frame_shape(ratio: tuple) -> None:
    augmentation = Augmentation(params(resize_param={"ratio": list(ratio)}), SHAPE)
    frames = np.full((2, *SHAPE), 0.8, np.float32)
    out = augmentation(frames, np.random.default_rng(0))
    assert out.shape == (2, *SHAPE)
    if ratio == (0.5, 0.5):
        # shrunk to 16x16 and padded back, centred
        np.testing.assert_allclose(out[:, 8:24, 8:24], 0.8, atol=1e-6)
        assert out[:, :8].max() == 0.0 and out[:, :, 24:].max() == 0.0


def test_crop_takes_one_window_for_all_frames() -> None:
    augmentation = Augmentation(params(resize_param={"ratio": [2.0, 2.0]}, crop_param={"size": [32, 32]}), SHAPE)
    frame = image(5)
    out = augmentation(np.stack([frame, frame]), np.random.default_rng(1))
    assert out.shape == (2, *SHAPE)
    np.testing.assert_array_equal(out[0], out[1])
    smaller = Augmentation(params(crop_param={"size": [20, 24]}), SHAPE)(np.stack([frame]), np.random.default_rng(0))
    assert smaller.shape == (1, *SHAPE)  # padded back to the frame shape


def test_brightness_scales_all_frames_by_one_factor() -> None:
    jitter = ColorJitter(brightness=0.5)
    frames = np.stack([np.full(SHAPE, 0.2, np.float32), np.full(SHAPE, 0.4, np.float32)])
    out = jitter(frames, np.random.default_rng(0))
    factor = out[0, 0, 0, 0] / 0.2
    assert factor != pytest.approx(1.0)
    np.testing.assert_allclose(out[1], np.clip(0.4 * factor, 0, 1), rtol=1e-5)


def test_jitter_changes_colours_equally_and_stays_in_range() -> None:
    augmentation = Augmentation(params(jitter_param=ALL["jitter_param"]), SHAPE)
    frame = image(2)
    changed = False
    for seed in range(10):
        out = augmentation(np.stack([frame, frame, frame]), np.random.default_rng(seed))
        np.testing.assert_array_equal(out[0], out[1])
        np.testing.assert_array_equal(out[0], out[2])
        assert 0.0 <= out.min() and out.max() <= 1.0
        changed |= not np.allclose(out[0], frame)
    assert changed


def test_hue_shift_and_hsv_round_trip() -> None:
    red = np.zeros((1, 4, 4, 3), np.float32)
    red[..., 0] = 1.0
    # ColorJitter(hue=0.5) draws a shift in [-0.5, 0.5]; a half turn maps red to cyan.
    shifted = hsv_to_rgb(np.concatenate([np.mod(rgb_to_hsv(red)[..., :1] + 0.5, 1.0), rgb_to_hsv(red)[..., 1:]], -1))
    np.testing.assert_allclose(shifted[0, 0, 0], [0.0, 1.0, 1.0], atol=1e-6)
    out = ColorJitter(hue=0.5)(red, np.random.default_rng(0))
    assert not np.allclose(out, red) and np.allclose(rgb_to_hsv(out)[..., 1:], rgb_to_hsv(red)[..., 1:], atol=1e-5)
    colours = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32)
    hsv = rgb_to_hsv(colours)
    np.testing.assert_allclose(hsv, skimage.color.rgb2hsv(colours), atol=1e-5)
    np.testing.assert_allclose(hsv_to_rgb(hsv), colours, atol=1e-5)


def test_no_params_is_identity_and_flip_draws_are_stable() -> None:
    frames = np.stack([image(0), image(1)])
    np.testing.assert_array_equal(Augmentation(None, SHAPE)(frames, np.random.default_rng(0)), frames)
    # The random stream does not depend on which flips are enabled.
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    RandomFlip(True, False)(frames, a)
    RandomFlip(False, True)(frames, b)
    assert a.random() == b.random()


def test_original_vox_config_augmentation() -> None:
    vox = params(
        flip_param={"horizontal_flip": True, "time_flip": True},
        jitter_param={"brightness": 0.1, "contrast": 0.1, "saturation": 0.1, "hue": 0.1},
    )
    augmentation = Augmentation(vox, (64, 64, 3))
    out = augmentation([image(0, (64, 64, 3)), image(1, (64, 64, 3))], np.random.default_rng(0))
    assert out.shape == (2, 64, 64, 3)
