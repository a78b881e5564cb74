"""`fomm reconstruct` end to end: videos written per test video, metrics printed and saved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import fomm
from fomm.data.frames import to_uint8
from fomm.cli import main
from fomm.data.video import read_video, video_info
from fomm.evaluation import reconstruct_video

from .test_evaluate import (
    REFERENCE,
    finished_files,
    make_synthetic,
    save_reference_checkpoint,
)


@pytest.fixture(scope="module")
def sprites(tmp_path_factory) -> Path:
    return make_synthetic(tmp_path_factory.mktemp("sprites"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_reference_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")


def _reconstruct(checkpoint: Path, dataset: Path, out: Path, *extra: str) -> int:
    return main(["reconstruct", "--checkpoint", str(checkpoint), "--dataset", str(dataset), "--out", str(out),
                 "--device", "cpu", "--max-train-videos", "2", *extra])


def test_reconstruct_writes_one_video_per_test_video_and_metrics(checkpoint, sprites, tmp_path, capsys):
    out = tmp_path / "recon"
    assert _reconstruct(checkpoint, sprites, out, "--batch-size", "3") == 0
    printed = capsys.readouterr().out
    assert "L1" in printed and "keypoint_error" in printed
    test_names = sorted(path.stem for path in (sprites / "test").glob("*.png"))
    assert finished_files(out) == sorted([f"{name}.mp4" for name in test_names]
                                         + ["metrics.csv", "metrics.json", "per_video.csv"])
    for name in test_names:
        info = video_info(out / f"{name}.mp4")
        assert (info.num_frames, info.height, info.width) == (8, 64, 64)
        assert read_video(out / f"{name}.mp4").shape == (8, 64, 64, 3)
    data = json.loads((out / "metrics.json").read_text())
    assert 0 < data["metrics"]["L1"]["value"] < 1
    assert data["metrics"]["keypoint_error"]["value"] > 0  # sprites have ground truth
    assert data["metrics"]["AKD"]["value"] is None  # reconstruct does not run landmark detectors
    assert data["settings"]["motion"].startswith("absolute")


def test_num_videos_limits_the_reconstruction(checkpoint, sprites, tmp_path):
    out = tmp_path / "one"
    assert _reconstruct(checkpoint, sprites, out, "--num-videos", "1") == 0
    assert len(list(out.glob("*.mp4"))) == 1
    assert len(json.loads((out / "metrics.json").read_text())["videos"]) == 1


def test_original_checkpoint_with_its_config_resizes_frames_to_the_model(sprites, tmp_path):
    """A 96x96 dataset is resized to the reference model's 64x64."""
    from fomm.data.synthetic import make_dataset

    big = tmp_path / "big"
    make_dataset("sprites", big, videos=2, frames=4, size=96, seed=1, test_fraction=0.5, workers=1)
    out = tmp_path / "out"
    assert main(["reconstruct", "--checkpoint", str(REFERENCE / "checkpoint.pth.tar"), "--config",
                 str(REFERENCE / "config.yaml"), "--dataset", str(big), "--out", str(out), "--device", "cpu"]) == 0
    (video,) = out.glob("*.mp4")
    info = video_info(video)
    assert (info.num_frames, info.height, info.width) == (4, 64, 64)


def test_reconstruct_bad_inputs_fail_with_one_line_and_no_output(checkpoint, sprites, tmp_path, capsys):
    no_test = tmp_path / "no_test"
    shutil.copytree(sprites / "train", no_test / "train")
    (no_test / "test").mkdir()
    (no_test / "test" / "notes.txt").write_text("not a video")
    no_split = tmp_path / "no_split"
    shutil.copytree(sprites / "train", no_split / "train")
    out = tmp_path / "out"
    cases = [
        ((checkpoint, no_test, out), "no usable videos for testing"),
        ((checkpoint, no_split, out), "test folder missing"),
        ((checkpoint, tmp_path / "absent", out), "not found"),
        ((REFERENCE / "checkpoint.pth.tar", sprites, out), "pass its YAML file"),
        ((checkpoint, sprites, out, "--batch-size", "0"), "--batch-size"),
    ]
    for arguments, expected in cases:
        code = _reconstruct(*arguments)
        error = capsys.readouterr().err
        assert code == 2, error
        assert error.startswith("fomm reconstruct: error:") and expected in error, error
    assert not out.exists()


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_reconstruct_writes_videos_in_the_configs_format(checkpoint, sprites, tmp_path, suffix):
    """reconstruction_params.format picks the container: a GIF, or a .png strip of the frames."""
    model = fomm.load_checkpoint(checkpoint)
    model.config.reconstruction_params.format = suffix
    formatted = fomm.save_checkpoint(tmp_path / "model.pt", model)
    out = tmp_path / "recon"
    assert _reconstruct(formatted, sprites, out, "--embedding", "none") == 0
    test_videos = sorted((sprites / "test").glob("*.png"))
    assert finished_files(out) == sorted([path.stem + suffix for path in test_videos]
                                         + ["metrics.csv", "metrics.json", "per_video.csv"])
    for path in test_videos:
        written = read_video(out / (path.stem + suffix))
        frames = torch.from_numpy(read_video(path, (64, 64, 3))).permute(0, 3, 1, 2).float() / 255
        expected = to_uint8(reconstruct_video(model, frames).prediction)
        assert written.shape == expected.shape == (8, 64, 64, 3)
        difference = np.abs(written.astype(int) - expected.astype(int))
        if suffix == ".png":  # lossless: exactly the reconstruction
            assert difference.max() == 0
        else:  # a GIF's 256-colour palette
            assert difference.mean() < 1  # measured 0.2
    if suffix == ".gif":
        assert video_info(out / (test_videos[0].stem + suffix)).fps == pytest.approx(25.0)
