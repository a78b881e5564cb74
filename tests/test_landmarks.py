"""The landmark detector: trains on synthetic ground truth, saves/loads, rejects bad input."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fomm.cli import main
from fomm.errors import UserError
from fomm.evaluation import (
    MAX_DETECTOR_TEST_ERROR,
    Detections,
    LandmarkDetector,
    detector_test_error,
    evaluate_dataset,
    landmark_error,
    load_landmark_detector,
    train_landmark_detector,
)
from fomm.evaluation.landmarks import cell_centres

from .test_evaluate import REFERENCE, finished_files, make_synthetic


@pytest.fixture(scope="module")
def sprites(tmp_path_factory) -> Path:
    return make_synthetic(tmp_path_factory.mktemp("sprites"))


def test_training_reduces_the_test_error(sprites):
    result = train_landmark_detector(sprites, epochs=8, batch_size=8, width=8, seed=0, learning_rate=3e-3)
    assert result.train_frames == 4 * 8 and result.test_frames == 2 * 8
    # measured: 22.4% of width untrained -> about 15% after 8 epochs on 32 frames
    assert result.test_error < 0.9 * result.initial_test_error
    assert result.train_error < result.test_error
    assert result.losses[-1] < result.losses[0]
    detections = result.detector(torch.rand(3, 3, 64, 64))
    assert isinstance(result.detector, LandmarkDetector)
    assert detections.points.shape == (3, 15, 2) and detections.detected.shape == (3, 15)
    assert detections.detected.dtype == bool


def test_train_landmarks_command_saves_a_loadable_detector(sprites, tmp_path, capsys):
    out = tmp_path / "models" / "landmarks.pt"
    out.parent.mkdir()
    assert main(["train-landmarks", "--dataset", str(sprites), "--out", str(out), "--epochs", "1",
                 "--width", "8", "--batch-size", "16", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "test error" in printed and "% of width" in printed
    assert finished_files(out.parent) == ["landmarks.pt"]  # no temporary file left behind
    detector = load_landmark_detector(out)
    assert detector.config.num_joints == 15 and detector.config.dataset_kind == "sprites"
    assert "test_error_percent_width" in detector.metrics
    # frames of another size are resized to the detector's input
    points, detected = detector(torch.rand(2, 3, 48, 48))
    assert points.shape == (2, 15, 2) and np.all(np.abs(points) <= 1.01)


def test_a_detector_trained_for_one_epoch_is_too_weak_for_akd(sprites, caplog):
    import fomm

    with caplog.at_level(logging.WARNING, logger="fomm.evaluation.landmarks"):
        result = train_landmark_detector(sprites, epochs=1, batch_size=16, width=8, seed=0)
    error = detector_test_error(result.detector)
    assert error == result.test_error > MAX_DETECTOR_TEST_ERROR  # measured: 22 % of width
    assert any("train it longer" in record.getMessage() for record in caplog.records)
    model = fomm.load_checkpoint(REFERENCE / "checkpoint.pth.tar", config=REFERENCE / "config.yaml")
    evaluation = evaluate_dataset(model, sprites, landmark_detector=result.detector, num_videos=1,
                                  keypoint_metrics=False)
    assert evaluation.value("AKD") is None and evaluation.value("MKR") is None
    assert f"{error:.2f} %" in evaluation.metric("AKD").note


def test_landmark_error_is_in_percent_of_width():
    truth = np.zeros((1, 2, 2))
    points = truth.copy()
    points[0, 0] = [2 / 63 * 3, 0]  # 3 pixels off at 64 wide
    assert landmark_error(points, truth, np.array([[True, False]]), 64) == pytest.approx(300 / 64)
    assert isinstance(Detections(points, np.ones((1, 2), bool)), tuple)


def test_soft_argmax_grid_uses_cell_centres():
    centres = cell_centres(16, 64)
    # cell 0 covers pixels 0..3, centre at pixel 1.5
    assert float(centres[0]) == pytest.approx(2 * 1.5 / 63 - 1)
    assert float(centres[-1]) == pytest.approx(-float(centres[0]))


def test_bad_inputs(sprites, tmp_path, capsys):
    with pytest.raises(UserError, match="not found"):
        load_landmark_detector(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00" * 10)
    with pytest.raises(UserError, match="cannot read"):
        load_landmark_detector(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(UserError, match="not a landmark detector"):
        load_landmark_detector(foreign)

    no_truth = tmp_path / "no_truth"
    shutil.copytree(sprites, no_truth, ignore=shutil.ignore_patterns("*.npz"))
    no_test = tmp_path / "no_test"
    shutil.copytree(sprites / "train", no_test / "train")
    out = tmp_path / "out" / "lm.pt"
    cases = [
        (["--dataset", str(no_truth)], "no ground-truth keypoints"),
        (["--dataset", str(no_test)], "no 'test' folder"),
        (["--dataset", str(tmp_path / "absent")], "not found"),
        (["--dataset", str(sprites), "--epochs", "0"], "--epochs"),
    ]
    for arguments, expected in cases:
        code = main(["train-landmarks", *arguments, "--out", str(out), "--device", "cpu"])
        error = capsys.readouterr().err
        assert code == 2, error
        assert error.startswith("fomm train-landmarks: error:") and expected in error, error
    assert not out.exists()
