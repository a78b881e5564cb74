"""`fomm reconstruct` end to end: videos written per test video, metrics printed and saved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fomm.cli import main
from fomm.data.video import read_video, video_info

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
    if not REFERENCE.is_dir():
        pytest.skip("reference fixtures missing")
    big = tmp_path / "big"
    try:
        from fomm.data.synthetic import make_dataset
    except ImportError:
        from fomm.data.synthetic.writer import make_dataset
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
