"""scripts/keypoint_parts.py: where a model's keypoints land on the sprites' parts."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

import fomm
from fomm.assets import BUNDLED_CHECKPOINT
from fomm.data.synthetic.sprites import PART_NAMES

from .script_modules import load_script, script_path
from .train_helpers import tiny_config

SCRIPT = script_path("keypoint_parts")
keypoint_parts = load_script("keypoint_parts")
labels_under = keypoint_parts.labels_under


def test_the_label_under_a_keypoint_is_read_x_then_y():
    labels = np.zeros((2, 4, 8), dtype=np.uint8)  # 4 rows, 8 columns
    labels[0, 1, 6] = 3                            # row 1, column 6
    labels[1, 3, 0] = 5                            # bottom-left pixel
    # Pixel centres span [-1, 1] (fomm.geometry): column 6 of 8 is x = 2 * 6/7 - 1, row 1 of 4 is
    # y = 2 * 1/3 - 1.
    value = np.array([[[2 * 6 / 7 - 1, 2 * 1 / 3 - 1], [0.9, -0.9]],
                      [[-0.99, 0.99], [1.5, -1.5]]])  # outside the frame: the nearest edge pixel
    assert labels_under(value, labels).tolist() == [[3, 0], [5, 0]]


def test_shares_of_a_model_sum_to_one(tmp_path):
    torch.manual_seed(0)
    fomm.save_checkpoint(tmp_path / "model.pt", fomm.build_model(tiny_config()))
    shares = keypoint_parts.part_shares(tmp_path / "model.pt", None, seed=0, videos=2, frames=3)
    assert shares.shape == (4, len(PART_NAMES) + 1)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)


def test_the_script_prints_a_table_for_the_bundled_model():
    result = subprocess.run([sys.executable, str(SCRIPT), "--checkpoint", str(BUNDLED_CHECKPOINT),
                             "--videos", "1", "--frames", "2"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "| keypoint | background | torso |" in result.stdout
    assert "of 10 (" in result.stdout
