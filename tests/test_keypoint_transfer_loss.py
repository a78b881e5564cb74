"""``loss_weights.keypoint_transfer``: on cross pairs, the driving keypoints moved onto the source
by relative motion must be the keypoints the detector finds on the truth frame. The animation of
a cross pair differs from the source animated by its truth video only through these keypoints, so
this names its whole gap to the oracle of ``fomm evaluate --cross-identity`` (issue 23)."""

from __future__ import annotations

import copy

import pytest
import torch
from fomm.config import FommConfig
from fomm.errors import ConfigError
from fomm.models.fomm.keypoints import relative_keypoints
from tests.train_helpers import TINY_CONFIG, blob_batch, generator_objective, train_briefly


def _config(weight: float, ratio: float = 0.5) -> FommConfig:
    data = copy.deepcopy(TINY_CONFIG)
    data["dataset_params"]["cross_pair_ratio"] = ratio
    data["train_params"]["loss_weights"]["keypoint_transfer"] = weight
    return FommConfig.from_dict(data)


def _objective(weight: float):
    """The generator objective of a fresh trainer (weights from the config's seed, float32)."""
    return generator_objective(_config(weight))


def _cross_batch() -> dict[str, torch.Tensor]:
    """Two pairs of :class:`MovingBlobs` made into cross samples: another initial frame and a
    target that is not the driving frame."""
    batch = blob_batch()
    return batch | {"initial": batch["driving"].roll(3, dims=-1), "target": batch["driving"].flip(-1)}


def test_the_weight_needs_cross_pairs_and_is_not_negative():
    with pytest.raises(ConfigError, match="keypoint_transfer.*cross_pair_ratio > 0"):
        _config(1.0, ratio=0.0)
    with pytest.raises(ConfigError, match="keypoint_transfer"):
        _config(-1.0)
    assert _config(0.0, ratio=0.0).train_params.loss_weights.keypoint_transfer == 0


def test_the_loss_is_the_distance_of_the_moved_keypoints_to_the_truths():
    objective = _objective(3.0)
    batch = _cross_batch()
    torch.manual_seed(7)
    losses, generated = objective(batch)
    detect = objective.kp_detector
    with torch.no_grad():
        moved = relative_keypoints(detect(batch["source"]), detect(batch["driving"]), detect(batch["initial"]))
        truth = detect(batch["target"])
    assert torch.allclose(generated["kp_driving"], moved.value, atol=1e-6)
    expected = 3.0 * ((moved.value - truth.value).abs().mean() + (moved.jacobian - truth.jacobian).abs().mean())
    assert float(losses["keypoint_transfer"].detach()) == pytest.approx(float(expected), rel=1e-5)
    assert float(expected) > 1e-3


def test_a_plain_sample_adds_nothing_and_the_detector_learns_from_a_cross_one():
    objective = _objective(1.0)
    batch = _cross_batch()
    plain = batch | {"initial": batch["source"], "target": batch["driving"]}
    torch.manual_seed(7)
    losses, _ = objective(plain)
    assert float(losses["keypoint_transfer"].detach()) < 1e-5  # the same keypoints, up to rounding
    torch.manual_seed(7)
    losses, _ = objective(batch)
    objective.kp_detector.zero_grad()
    losses["keypoint_transfer"].backward()
    gradient = sum(float(p.grad.abs().sum()) for p in objective.kp_detector.parameters() if p.grad is not None)
    assert gradient > 1e-4


def test_without_the_weight_there_is_no_such_loss():
    torch.manual_seed(7)
    losses, _ = _objective(0.0)(_cross_batch())
    assert "keypoint_transfer" not in losses


def test_fomm_train_with_the_loss_writes_a_checkpoint_that_carries_it(tmp_path):
    from fomm.data.synthetic.writer import make_dataset

    root = tmp_path / "sprites"
    make_dataset("sprites", root, videos=5, frames=4, size=32, seed=0, test_fraction=0.2, workers=1,
                 train_cross_pairs=4)
    checkpoint = train_briefly(_config(2.0), root, tmp_path)
    assert checkpoint["config"]["train_params"]["loss_weights"]["keypoint_transfer"] == 2.0
