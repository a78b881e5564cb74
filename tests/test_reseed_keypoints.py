"""scripts/reseed_keypoints.py: keypoints that sit together become copies of the ones that leave error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import fomm
from fomm.data.synthetic.writer import make_dataset

from .train_helpers import tiny_config
from tests.script_modules import load_script, script_path

SCRIPT = script_path("reseed_keypoints")
reseed = load_script("reseed_keypoints")


def test_keypoints_near_a_kept_one_are_redundant():
    # 0 and 1 sit together, 2 is near 1 only (1 is not kept), 3 is far from all.
    distance = torch.tensor([[0.00, 0.02, 0.12, 0.90],
                             [0.02, 0.00, 0.05, 0.90],
                             [0.12, 0.05, 0.00, 0.90],
                             [0.90, 0.90, 0.90, 0.00]])
    assert reseed.redundant_keypoints(distance, radius=0.08) == [1]
    assert reseed.redundant_keypoints(distance, radius=0.15) == [1, 2]
    assert reseed.redundant_keypoints(distance, radius=0.01) == []


def test_copies_go_to_the_most_error_per_copy():
    share = torch.tensor([1.0, 0.0, 0.0, 10.0, 4.0])
    # 3 has 10: its first copy halves it to 5 (still the most), its second to 3.3 (then 4 wins).
    assert reseed.assign_copies(share, [1, 2, 0]) == [(1, 3), (2, 3), (0, 4)]
    assert reseed.assign_copies(share, []) == []


@pytest.fixture(scope="module")
def collapsed(tmp_path_factory) -> tuple[Path, Path, Path, fomm.MotionModel]:
    """A tiny FOMM whose keypoints 0 and 1 are the same filter, its config, and a sprites dataset."""
    root = tmp_path_factory.mktemp("reseed")
    make_dataset("sprites", root / "data", videos=4, frames=4, size=32, seed=0, test_fraction=0.25, workers=1)
    config = tiny_config()
    (root / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    torch.manual_seed(0)
    model = fomm.build_model(config)
    with torch.no_grad():
        model.kp_detector.kp.weight[1] = model.kp_detector.kp.weight[0]
        model.kp_detector.kp.bias[1] = model.kp_detector.kp.bias[0]
    fomm.save_checkpoint(root / "collapsed.pt", model)
    return root / "collapsed.pt", root / "config.yaml", root / "data", model


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def refusal(checkpoint: Path, dataset: Path, out: Path, *more: str) -> str:
    """The script's error output for arguments it must refuse (it fails and writes nothing)."""
    result = run_script("--checkpoint", str(checkpoint), "--dataset", str(dataset), "--out", str(out), *more)
    assert result.returncode != 0
    assert not out.exists()
    assert "Traceback" not in result.stderr
    return result.stderr


def test_a_collapsed_keypoint_becomes_a_copy_of_another(collapsed, tmp_path):
    checkpoint, config, data, before = collapsed
    result = run_script("--checkpoint", str(checkpoint), "--dataset", str(data), "--out", str(tmp_path / "init.pt"))
    assert result.returncode == 0, result.stderr
    assert "redundant" in result.stdout
    line = next(line for line in result.stdout.splitlines() if line.startswith("keypoint 1 <- a copy of keypoint"))
    original = int(line.split()[-1])
    assert original in (0, 2, 3)

    assert fomm.read_checkpoint(tmp_path / "init.pt", config).is_original  # `fomm train --checkpoint` starts afresh
    after = fomm.load_checkpoint(tmp_path / "init.pt", config)
    kp_before, kp_after = before.kp_detector, after.kp_detector
    copied = kp_after.kp.weight[1] - kp_before.kp.weight[original]
    assert 0 < copied.abs().max() < 0.2 * kp_before.kp.weight[original].std()  # a copy, perturbed
    assert torch.equal(kp_after.kp.bias[1], kp_before.kp.bias[original])
    assert torch.equal(kp_after.jacobian.weight[4:8], kp_before.jacobian.weight[4 * original:4 * original + 4])
    motion_before = before.generator.dense_motion_network
    motion_after = after.generator.dense_motion_network
    first_before = motion_before.hourglass.encoder.down_blocks[0].conv.weight
    first_after = motion_after.hourglass.encoder.down_blocks[0].conv.weight
    # Input groups of 4 channels (heatmap + RGB deformed source), group 0 the background.
    assert torch.equal(first_after[:, 8:12], first_before[:, 4 * (original + 1):4 * (original + 2)])
    tail = motion_after.mask.weight.shape[1] - first_after.shape[1]  # the hourglass hands its input on last
    assert torch.equal(motion_after.mask.weight[2, :tail], motion_before.mask.weight[original + 1, :tail])
    assert torch.equal(motion_after.mask.bias[2], motion_before.mask.bias[original + 1])
    for head_after, head_before in ((motion_after.mask, motion_before.mask),
                                    (motion_after.occlusion, motion_before.occlusion)):
        rows = [row for row in range(len(head_after.weight)) if not (head_after is motion_after.mask and row == 2)]
        assert torch.equal(head_after.weight[rows, tail + 8:tail + 12],
                           head_before.weight[rows, tail + 4 * (original + 1):tail + 4 * (original + 2)])
    for k in (0, 2, 3):  # every other keypoint is untouched
        assert torch.equal(kp_after.kp.weight[k], kp_before.kp.weight[k])
        assert torch.equal(first_after[:, 4 * (k + 1):4 * (k + 2)], first_before[:, 4 * (k + 1):4 * (k + 2)])


def test_a_dataset_without_training_videos_is_refused(collapsed, tmp_path):
    checkpoint, _, _, _ = collapsed
    (tmp_path / "empty" / "train").mkdir(parents=True)
    assert "no training videos" in refusal(checkpoint, tmp_path / "empty", tmp_path / "init.pt")


def test_growing_keeps_every_keypoint_and_fills_the_new_slots(collapsed, tmp_path):
    checkpoint, _, data, before = collapsed
    larger = tiny_config().to_dict()
    larger["model_params"]["common_params"]["num_kp"] = 6
    (tmp_path / "grow.yaml").write_text(yaml.safe_dump(larger))
    result = run_script("--checkpoint", str(checkpoint), "--dataset", str(data), "--out", str(tmp_path / "init.pt"),
                        "--grow-config", str(tmp_path / "grow.yaml"))
    assert result.returncode == 0, result.stderr
    filled = {int(line.split()[1]): int(line.split()[-1]) for line in result.stdout.splitlines()
              if line.startswith("keypoint ") and "<- a copy of keypoint" in line}
    assert sorted(filled) == [1, 4, 5]  # the redundant slot and the two new ones
    assert all(original in (0, 2, 3) for original in filled.values())

    after = fomm.load_checkpoint(tmp_path / "init.pt", tmp_path / "grow.yaml")
    assert after.kp_detector.kp.weight.shape[0] == 6
    for k in (0, 2, 3):
        assert torch.equal(after.kp_detector.kp.weight[k], before.kp_detector.kp.weight[k])
    for slot, original in filled.items():
        assert torch.equal(after.kp_detector.kp.bias[slot], before.kp_detector.kp.bias[original])
        assert torch.equal(after.generator.dense_motion_network.mask.bias[slot + 1],
                           before.generator.dense_motion_network.mask.bias[original + 1])
    # Everything that does not depend on the number of keypoints is the checkpoint's.
    for name, value in before.generator.state_dict().items():
        if "dense_motion_network" not in name:
            assert torch.equal(after.generator.state_dict()[name], value), name


def test_growing_into_a_config_that_differs_otherwise_is_refused(collapsed, tmp_path):
    checkpoint, _, data, _ = collapsed
    other = tiny_config().to_dict()
    other["model_params"]["common_params"]["num_kp"] = 6
    other["model_params"]["generator_params"]["block_expansion"] = 16
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    error = refusal(checkpoint, data, tmp_path / "init.pt", "--grow-config", str(tmp_path / "other.yaml"))
    assert "only num_kp may differ" in error


def test_a_missing_dataset_is_named(collapsed, tmp_path):
    checkpoint, _, _, _ = collapsed
    error = refusal(checkpoint, tmp_path / "nowhere", tmp_path / "init.pt")
    assert "nowhere" in error and "not found" in error
