"""One resize and one pixel conversion: for the same video frame, training (a dataset), evaluation
(the reconstruction protocol), animation (the pipeline's Framing) and live mode give a model the
same input, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

import fomm
from fomm.animate import Animator
from fomm.app.live import LiveAnimator
from fomm.assets import BUNDLED_CHECKPOINT
from fomm.config import DatasetParams
from fomm.data.datasets import FramesDataset
from fomm.data.frames import Framing, fit_frames, resize, to_float, to_uint8
from fomm.data.video import read_video, write_video
from fomm.evaluation.protocol import read_frames


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A real photograph panned across a 410x412 frame, in a dataset layout (train/, test/)."""
    photo = data.astronaut()
    frames = np.stack([photo[40 + 2 * t:450 + 2 * t, 30 + 3 * t:442 + 3 * t] for t in range(4)])
    root = tmp_path_factory.mktemp("frames")
    for split in ("train", "test"):
        (root / split).mkdir()
        for name in ("a", "b"):
            write_video(root / split / f"{name}.mp4", frames, fps=10)
    return root, read_video(root / "test" / "a.mp4")


def test_training_evaluation_animation_and_live_mode_see_the_same_input(video):
    root, decoded = video
    expected = Framing(64, 64)(decoded)  # animation: the pipeline's fit
    dataset = FramesDataset(DatasetParams(root_dir=str(root), frame_shape=(64, 64, 3)), is_train=False)
    from_dataset = dataset[0]["video"].permute(1, 0, 2, 3)  # training and the datasets' test split
    assert torch.equal(from_dataset, expected)
    assert torch.equal(read_frames(root / "test" / "a.mp4", (64, 64, 3)), expected)  # evaluation
    live = LiveAnimator(Animator(fomm.load_checkpoint(BUNDLED_CHECKPOINT)), [decoded[0]])
    assert torch.equal(torch.cat([live.framing(frame)(frame) for frame in decoded]), expected)  # live mode
    assert torch.equal(fit_frames(decoded, 64, 64), expected)  # the API's helper


def test_the_resize_is_the_area_filter_when_shrinking():
    frame = np.random.default_rng(1).random((8, 8, 3)).astype(np.float32)
    means = frame.reshape(2, 4, 2, 4, 3).mean(axis=(1, 3))  # each output pixel: the mean of its 4x4 block
    assert np.allclose(resize(frame, 2, 2), means, atol=1e-6)


def test_the_pixel_conversion_round_trips():
    frames = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    tensor = to_float(frames)
    assert tensor.shape == (2, 3, 5, 7) and tensor.dtype == torch.float32 and tensor.max() <= 1
    assert np.array_equal(to_uint8(tensor), frames)
