"""scripts/keypoint_transfer_gap.py: how far a model's own description carries over between
figures (what alone separates an animation of a cross pair from its oracle)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fomm
from fomm.assets import BUNDLED_CHECKPOINT
from fomm.data.synthetic.writer import generate_video, make_dataset
from tests.script_modules import load_script, script_path

SCRIPT = script_path("keypoint_transfer_gap")
keypoint_transfer_gap = load_script("keypoint_transfer_gap")


@pytest.fixture(scope="module")
def bundled():
    return fomm.load_checkpoint(BUNDLED_CHECKPOINT)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gap") / "sprites"
    make_dataset("sprites", root, videos=4, frames=6, size=64, seed=11, test_fraction=0.5, workers=1, cross_pairs=2)
    return root


def _frames(seed: int) -> torch.Tensor:
    """The 6 frames ``(T, 3, 64, 64)`` in [0, 1] of sprites video 0 of ``seed``."""
    video = generate_video("sprites", seed, 0, 6, 64)
    return torch.from_numpy(video.frames).permute(0, 3, 1, 2).float() / 255


def test_a_figure_driving_itself_has_no_gap_and_another_truth_has_one(bundled):
    driving, other = _frames(3), _frames(4)
    points, jacobian = keypoint_transfer_gap.transfer_gap(bundled, driving[:1], driving, driving)
    assert points < 1e-3 and jacobian < 1e-4  # source = initial frame: the transfer gives the driving keypoints
    points, jacobian = keypoint_transfer_gap.transfer_gap(bundled, driving[:1], driving, other)
    assert points > 1.0 and jacobian > 1e-3


def test_every_pair_gets_a_row_and_the_script_prints_them(bundled, pairs):
    gaps = keypoint_transfer_gap.dataset_gaps(bundled, pairs)
    assert len(gaps) == 2 and all(gap.points_px > 0 and gap.jacobian > 0 for gap in gaps)
    result = subprocess.run([sys.executable, str(SCRIPT), "--checkpoint", str(BUNDLED_CHECKPOINT),
                             "--dataset", str(pairs)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "pair,points_px,jacobian" and len(lines) == 4
    assert lines[1].split(",")[0] == gaps[0].name
    assert float(lines[-1].split(",")[1]) == pytest.approx(sum(gap.points_px for gap in gaps) / 2, abs=2e-3)


@pytest.mark.parametrize("family", ["tpsmm", "mraa"])
def test_other_families_are_measured_through_the_same_interface(family, pairs, tmp_path):
    from fomm.checkpoint import load_checkpoint
    from tests.reference_fixtures import fixture, original_checkpoint

    torch.save(original_checkpoint(family), tmp_path / "original.pth.tar")
    model = load_checkpoint(tmp_path / "original.pth.tar", fixture(family, "config.yaml"))
    gaps = keypoint_transfer_gap.dataset_gaps(model, pairs)
    assert len(gaps) == 2 and all(gap.points_px > 0 and gap.jacobian is None for gap in gaps)


def test_a_dataset_without_pairs_is_named_not_a_traceback(tmp_path):
    make_dataset("sprites", tmp_path / "plain", videos=2, frames=2, size=32, seed=0, workers=1)
    result = subprocess.run([sys.executable, str(SCRIPT), "--checkpoint", str(BUNDLED_CHECKPOINT),
                             "--dataset", str(tmp_path / "plain")], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no cross-identity pairs" in result.stderr and "--cross-pairs N" in result.stderr


def test_pixels_of_a_figure_driving_itself_are_the_oracle_in_every_mix(bundled, pairs):
    from fomm.data.synthetic.writer import list_cross_pairs
    from fomm.evaluation.cross_identity import read_pair

    data = read_pair(list_cross_pairs(pairs)[0], bundled.frame_shape)
    data.driving = data.truth  # the truth's first frame is the source: relative motion gives its own keypoints
    row = keypoint_transfer_gap.pixel_decomposition(bundled, "self", data)
    assert len(row.each_point_transferred) == bundled.config.model_params.common_params.num_kp
    assert row.oracle > 0 and row.moving_values > 0
    assert row.row() == pytest.approx([row.oracle] * len(row.row()), abs=1e-5)


def test_pixels_table_pools_like_the_evaluation_and_splits_points_from_jacobians(bundled, pairs):
    from fomm.evaluation.cross_identity import ModelAnimation, evaluate_cross_identity

    rows = keypoint_transfer_gap.dataset_decompositions(bundled, pairs)
    # The script decomposes the paper's relative transfer (the bundled model's default is its learned one).
    evaluated = evaluate_cross_identity(ModelAnimation(bundled, motion="relative"), pairs, bundled.frame_shape)
    weights = [row.moving_values for row in rows]
    pooled = sum(row.transferred * w for row, w in zip(rows, weights)) / sum(weights)
    assert pooled == pytest.approx(evaluated.value("L1_moving"), rel=1e-4)
    assert sum(row.oracle * w for row, w in zip(rows, weights)) / sum(weights) == pytest.approx(
        evaluated.value("L1_moving_oracle"), rel=1e-4)
    assert all(row.points_transferred != row.oracle and row.jacobians_transferred != row.oracle for row in rows)
    result = subprocess.run([sys.executable, str(SCRIPT), "--checkpoint", str(BUNDLED_CHECKPOINT),
                             "--dataset", str(pairs), "--pixels"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    table = result.stdout.split("\n\n")[1].strip().splitlines()
    assert table[0].startswith("pair,transferred,oracle,points_transferred,jacobians_transferred,point_0_transferred")
    assert len(table) == 4 and table[-1].startswith("total,")
    assert float(table[-1].split(",")[1]) == pytest.approx(evaluated.value("L1_moving"), abs=1e-5)


def test_pixels_of_a_family_without_jacobians_is_named(pairs, tmp_path):
    from fomm.checkpoint import load_checkpoint
    from fomm.errors import UserError
    from tests.reference_fixtures import fixture, original_checkpoint

    torch.save(original_checkpoint("tpsmm"), tmp_path / "original.pth.tar")
    model = load_checkpoint(tmp_path / "original.pth.tar", fixture("tpsmm", "config.yaml"))
    with pytest.raises(UserError, match="--pixels needs a description with jacobians"):
        keypoint_transfer_gap.dataset_decompositions(model, pairs)
