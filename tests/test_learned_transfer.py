"""scripts/learned_transfer.py: a keypoint transfer learned through a frozen model (an experiment
on the oracle half of the cross-identity bar)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fomm
from fomm.assets import BUNDLED_CHECKPOINT
from fomm.data.synthetic.writer import make_dataset
from fomm.models.fomm import Keypoints, PointTransfer, relative_keypoints
from fomm.models.fomm.point_transfer import as_keypoints
from tests.script_modules import load_script, script_path

SCRIPT = script_path("learned_transfer")
learned_transfer = load_script("learned_transfer")


@pytest.fixture(scope="module")
def bundled():
    return fomm.load_checkpoint(BUNDLED_CHECKPOINT)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("transfer") / "sprites"
    make_dataset("sprites", root, videos=6, frames=6, size=64, seed=5, test_fraction=0.5, workers=1,
                 cross_pairs=2, train_cross_pairs=3)
    return root


def _random_keypoints(batch: int, num_kp: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    value = torch.rand(batch, num_kp, 2, generator=generator) * 2 - 1
    jacobian = torch.eye(2) + 0.2 * torch.randn(batch, num_kp, 2, 2, generator=generator)
    return Keypoints(value=value, jacobian=jacobian)


def test_an_untrained_transfer_that_sees_images_is_the_relative_transfer_exactly():
    """The experiment's transfer is the package's with image features added (the package's own is
    tested in tests/test_point_transfer.py)."""
    source, initial, driving = (_random_keypoints(4, 5, seed) for seed in (1, 2, 3))
    images = torch.rand(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    transfer = learned_transfer.build_transfer(5, image_channels=8)
    assert isinstance(transfer, PointTransfer) and transfer.image_channels == 8
    moved = transfer(source, driving, initial, *images)
    expected = relative_keypoints(source, driving, initial)
    assert torch.equal(moved.value, expected.value) and torch.equal(moved.jacobian, expected.jacobian)


def test_image_features_are_read_at_the_keypoints():
    features = learned_transfer.ImageFeatures(4)
    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    corners = torch.tensor([[[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0]]])
    with torch.no_grad():
        feature_map = features.body(image)
        sampled = features(image, corners)
    assert sampled.shape == (1, 3, 4)
    # (x, y) = (-1, -1) is the top-left cell, (1, 1) the bottom-right, (1, -1) the top-right
    for point, (row, column) in enumerate([(0, 0), (-1, -1), (0, -1)]):
        assert torch.allclose(sampled[0, point], feature_map[0, :, row, column], atol=1e-6)


def test_a_transfer_that_sees_images_names_what_it_misses():
    keypoints = [_random_keypoints(2, 5, seed) for seed in (1, 2, 3)]
    with pytest.raises(ValueError, match="source_image and initial_image"):
        learned_transfer.build_transfer(5, image_channels=4)(*keypoints)


@pytest.mark.parametrize("image_channels", [0, 8])
def test_training_lowers_the_rendering_error_on_the_pairs_it_fits(bundled, dataset, image_channels):
    data = learned_transfer.TrainingPairs(bundled, dataset)
    assert data.truths.shape[:2] == (3, 6) and data.truths.dtype == torch.uint8
    assert data.initials.shape == data.sources.shape
    pairs, frames = torch.arange(3).repeat_interleave(5), torch.arange(1, 6).repeat(3)

    def error(transfer) -> float:
        source, initial_image, truth, source_points, initial, driving = data.batch(pairs, frames)
        images = (source, initial_image) if image_channels else ()
        with torch.no_grad():
            moved = transfer(as_keypoints(source_points), as_keypoints(driving), as_keypoints(initial), *images)
            prediction = bundled.render(bundled.encode_source(source), as_keypoints(source_points), moved).prediction
        return float((prediction - truth).abs().mean())

    untrained = learned_transfer.build_transfer(bundled.config.model_params.common_params.num_kp, image_channels)
    weights_before = {name: p.clone() for name, p in bundled.state_dict().items()}
    trained, losses = learned_transfer.train(bundled, dataset, steps=60, learning_rate=1e-3, log_every=20,
                                             image_channels=image_channels)
    assert isinstance(trained, learned_transfer.ImagePointTransfer) == bool(image_channels)
    assert len(losses) == 3
    assert error(trained) < 0.95 * error(untrained)
    assert all(torch.equal(weights_before[name], p) for name, p in bundled.state_dict().items())  # the model stays frozen


def test_evaluate_writes_both_folders_and_an_untrained_transfer_scores_as_relative(bundled, dataset, tmp_path):
    num_kp = bundled.config.model_params.common_params.num_kp
    transfer = learned_transfer.build_transfer(num_kp, image_channels=8)  # the images pass through evaluate too
    torch.save({"num_kp": num_kp, "image_channels": 8, "state_dict": transfer.state_dict()}, tmp_path / "transfer.pt")
    result = subprocess.run([sys.executable, str(SCRIPT), "evaluate", "--checkpoint", str(BUNDLED_CHECKPOINT),
                             "--transfer", str(tmp_path / "transfer.pt"), "--dataset", str(dataset),
                             "--out", str(tmp_path / "eval")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "transfer,l1_moving,moving_vs_repeat,moving_vs_relative_oracle"
    relative, learned = (line.split(",")[1:] for line in lines[1:3])
    assert relative == learned  # zero correction: the same frames, to the printed digit
    for name in ("relative", "learned"):
        assert (tmp_path / "eval" / name / "per_pair.csv").is_file()


def test_a_dataset_without_training_pairs_is_named_not_a_traceback(tmp_path):
    make_dataset("sprites", tmp_path / "plain", videos=2, frames=2, size=32, seed=0, workers=1)
    result = subprocess.run([sys.executable, str(SCRIPT), "train", "--checkpoint", str(BUNDLED_CHECKPOINT),
                             "--dataset", str(tmp_path / "plain"), "--steps", "1", "--out", str(tmp_path / "t.pt")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--train-cross-pairs N" in result.stderr
    assert not (tmp_path / "t.pt").exists()


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_attach_writes_a_checkpoint_that_animates_with_the_transfer(bundled, dataset, tmp_path):
    """``attach`` puts a keypoint transfer into a checkpoint (config section and weights); ``fomm
    animate`` then runs it by default, and ``evaluate`` without --transfer measures the checkpoint's own."""
    base = fomm.load_checkpoint(BUNDLED_CHECKPOINT)
    base.point_transfer = None
    base.config.model_params.point_transfer_params = None
    plain = fomm.save_checkpoint(tmp_path / "plain.pt", base)
    num_kp = bundled.config.model_params.common_params.num_kp
    transfer = learned_transfer.build_transfer(num_kp)
    with torch.no_grad():
        transfer.correction.bias.fill_(0.02)
    torch.save({"num_kp": num_kp, "image_channels": 0, "state_dict": transfer.state_dict()}, tmp_path / "t.pt")
    attached = _run("attach", "--checkpoint", str(plain), "--transfer", str(tmp_path / "t.pt"),
                    "--out", str(tmp_path / "with.pt"))
    assert attached.returncode == 0, attached.stderr
    model = fomm.load_checkpoint(tmp_path / "with.pt")
    assert model.default_motion().mode == "learned"
    for name, tensor in transfer.state_dict().items():
        assert torch.equal(model.point_transfer.state_dict()[name], tensor)
    for name, tensor in base.generator.state_dict().items():
        assert torch.equal(model.generator.state_dict()[name], tensor)

    evaluated = _run("evaluate", "--checkpoint", str(tmp_path / "with.pt"), "--dataset", str(dataset),
                     "--out", str(tmp_path / "eval"))
    assert evaluated.returncode == 0, evaluated.stderr
    relative, learned = (line.split(",")[1] for line in evaluated.stdout.strip().splitlines()[1:3])
    assert relative != learned  # the nudge moves every keypoint: other frames

    missing = _run("evaluate", "--checkpoint", str(plain), "--dataset", str(dataset), "--out", str(tmp_path / "e2"))
    assert missing.returncode == 2 and "carries no point transfer" in missing.stderr
    images = learned_transfer.build_transfer(num_kp, image_channels=4)
    torch.save({"num_kp": num_kp, "image_channels": 4, "state_dict": images.state_dict()}, tmp_path / "i.pt")
    refused = _run("attach", "--checkpoint", str(plain), "--transfer", str(tmp_path / "i.pt"),
                   "--out", str(tmp_path / "bad.pt"))
    assert refused.returncode == 2 and "keypoint-only" in refused.stderr and not (tmp_path / "bad.pt").exists()
