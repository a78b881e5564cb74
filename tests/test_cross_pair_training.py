"""Training on cross-identity pairs: ``fomm make-dataset --train-cross-pairs`` writes pairs of
training videos with their ground truth, ``dataset_params.cross_pair_ratio`` mixes them into the
training samples, and FOMM's objective animates the source by relative motion and compares it
with the truth (issue 23's remedy for a model that only ever learned to copy its own figure)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from fomm.cli import main
from fomm.config import FommConfig
from fomm.data.datasets import FramesDataset
from fomm.data.synthetic.writer import (
    CROSS_FOLDER,
    TRAIN_CROSS_FOLDER,
    list_cross_pairs,
    make_dataset,
    read_meta,
)
from fomm.data.video import read_video
from fomm.errors import DataError
from fomm.training import CHECKPOINT_NAME, Trainer
from tests.train_helpers import TINY_CONFIG, MovingBlobs, blob_batch, tiny_config


@pytest.fixture(scope="module")
def with_training_pairs(tmp_path_factory) -> Path:
    """6 sprites videos of 6 frames at 32x32 (2 in test/), 2 evaluation and 5 training cross pairs."""
    root = tmp_path_factory.mktemp("cross-train") / "sprites"
    make_dataset("sprites", root, videos=6, frames=6, size=32, seed=0, test_fraction=0.34, workers=1,
                 cross_pairs=2, train_cross_pairs=5)
    return root


def _config(root: Path, ratio: float) -> FommConfig:
    data = yaml.safe_load(yaml.safe_dump(TINY_CONFIG))
    data["dataset_params"].update(root_dir=str(root), cross_pair_ratio=ratio)
    return FommConfig.from_dict(data)


def test_training_pairs_are_written_beside_the_evaluation_pairs(with_training_pairs):
    root = with_training_pairs
    meta = read_meta(root)
    assert meta["cross_pairs"] == 2 and meta["train_cross_pairs"] == 5
    evaluation, training = list_cross_pairs(root), list_cross_pairs(root, TRAIN_CROSS_FOLDER)
    assert len(evaluation) == 2 and len(training) == 5
    train_videos, test_videos = set(meta["train"]), set(meta["test"])
    for pair in training:
        assert pair.truth.parent.name == TRAIN_CROSS_FOLDER
        assert {pair.source.parent.name, pair.driving.parent.name} == {"train"}
        assert pair.source.stem in train_videos and pair.driving.stem in train_videos and pair.source != pair.driving
    assert all(pair.source.stem in test_videos and pair.truth.parent.name == CROSS_FOLDER for pair in evaluation)


def test_a_dataset_without_training_pairs_names_the_option(tmp_path):
    make_dataset("sprites", tmp_path / "d", videos=4, frames=3, size=32, workers=1)
    with pytest.raises(DataError, match="--train-cross-pairs N"):
        FramesDataset(_config(tmp_path / "d", 0.5).dataset_params, is_train=True)


def test_cross_samples_are_a_moved_by_b_and_other_samples_the_plain_pair(with_training_pairs):
    params = _config(with_training_pairs, 0.5).dataset_params.model_copy(update={"augmentation_params": None})
    dataset = FramesDataset(params, is_train=True)
    dataset.reseed(0)
    pairs = {pair.name: pair for pair in list_cross_pairs(with_training_pairs, TRAIN_CROSS_FOLDER)}
    kinds = {"cross": 0, "plain": 0}
    for index in range(24):
        sample = dataset[index % len(dataset)]
        assert set(sample) == {"source", "driving", "initial", "target", "name", "nearby"}
        if sample["name"] not in pairs:
            kinds["plain"] += 1
            assert torch.equal(sample["initial"], sample["source"]) and torch.equal(sample["target"], sample["driving"])
            continue
        kinds["cross"] += 1
        pair = pairs[sample["name"]]
        source, driving, truth = (torch.from_numpy(read_video(path)).permute(0, 3, 1, 2).float() / 255
                                  for path in (pair.source, pair.driving, pair.truth))
        # One frame t > 0 of the driving video and the truth, after both first frames.
        t = int(torch.argmin((truth - sample["target"]).abs().flatten(1).amax(dim=1)))
        assert t > 0 and torch.allclose(sample["target"], truth[t], atol=1e-6)
        assert torch.allclose(sample["driving"], driving[t], atol=1e-6)
        assert torch.allclose(sample["initial"], driving[0], atol=1e-6)
        assert torch.allclose(sample["source"], source[0], atol=1e-6)
        assert not torch.equal(sample["target"], sample["driving"])  # A's figure, not B's
    assert kinds["cross"] >= 4 and kinds["plain"] >= 4, kinds


def test_without_the_ratio_samples_stay_as_they_were(with_training_pairs):
    dataset = FramesDataset(_config(with_training_pairs, 0.0).dataset_params, is_train=True)
    assert set(dataset[0]) == {"source", "driving", "name", "nearby"}


def _step(batch: dict[str, torch.Tensor]) -> tuple[Trainer, dict[str, float], dict[str, torch.Tensor]]:
    """A fresh trainer (weights from the config's seed) and its first step on ``batch``."""
    trainer = Trainer(tiny_config(), "unused-log-dir", device="cpu", dataset=MovingBlobs(4), progress=False)
    torch.manual_seed(7)  # the same equivariance warp for every batch
    values, generated = trainer.train_step(batch)
    return trainer, values, generated


def test_the_relative_objective_on_a_plain_pair_is_the_plain_objective():
    """With the source as the initial frame and the driving frame as the target, relative motion
    gives back the driving keypoints, so every loss is the plain pair's (up to rounding)."""
    batch = blob_batch()
    _, plain, _ = _step(batch)
    _, relative, _ = _step(batch | {"initial": batch["source"], "target": batch["driving"]})
    assert set(relative) == set(plain)
    for name, value in plain.items():
        assert relative[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name


def test_a_cross_batch_is_compared_with_its_target():
    batch = blob_batch()
    target = batch["driving"].flip(-1)
    trainer, values, generated = _step(batch | {"initial": batch["driving"].roll(1, dims=-1), "target": target})
    objective = trainer.objectives["generator"]

    def reconstruction(real: torch.Tensor) -> float:
        return float(objective.perceptual(objective.pyramid(generated["prediction"]), objective.pyramid(real)))

    assert values["perceptual"] == pytest.approx(reconstruction(target), rel=1e-5)
    assert values["perceptual"] != pytest.approx(reconstruction(batch["driving"]), rel=1e-3)


def test_fomm_train_on_cross_pairs_and_other_families_refuse_them(with_training_pairs, tmp_path, capsys):
    config = tmp_path / "cross.yaml"
    config.write_text(yaml.safe_dump(_config(with_training_pairs, 0.5).to_dict()))
    run = tmp_path / "run"
    common = ["--threads", "1", "--no-progress", "--device", "cpu"]
    assert main(["train", "--config", str(config), "--log-dir", str(run), "--max-steps", "3", *common]) == 0
    assert (run / CHECKPOINT_NAME).is_file()

    from tests.test_family_training import small_config

    tpsmm = yaml.safe_load(small_config("tpsmm", with_training_pairs, tmp_path).read_text())
    tpsmm["dataset_params"]["cross_pair_ratio"] = 0.5
    tpsmm_config = tmp_path / "tpsmm.yaml"
    tpsmm_config.write_text(yaml.safe_dump(tpsmm))
    capsys.readouterr()
    assert main(["train", "--config", str(tpsmm_config), "--log-dir", str(tmp_path / "tpsmm"), "--max-steps", "1",
                 *common]) == 2
    assert "cross_pair_ratio > 0 (training on cross pairs) is implemented for FOMM models only" in capsys.readouterr().err
    assert not (tmp_path / "tpsmm" / CHECKPOINT_NAME).exists()
