"""The embedded default: the bundled model and media, and `fomm demo` from an installed wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import imageio.v3 as iio
import pytest
import torch

import fomm
from fomm.animate import Animator
from fomm.data.frames import fit_frames
from fomm.assets import BUNDLED_CHECKPOINT, BUNDLED_DRIVING, BUNDLED_SOURCE
from fomm.data.video import read_video, video_info

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "data" / "bundled_reference.pt"


def test_bundled_model_reproduces_its_reference_frames():
    """A change to the models, the checkpoint loader or the shipped weights shows up here."""
    reference = torch.load(REFERENCE, weights_only=True)
    model = fomm.load_checkpoint(BUNDLED_CHECKPOINT)
    assert model.config.dataset_params.frame_shape == (64, 64, 3)
    source = fit_frames(iio.imread(BUNDLED_SOURCE), 64, 64)[0]
    driving = fit_frames(read_video(BUNDLED_DRIVING), 64, 64)
    result = Animator(model).animate(source, driving)
    frames = reference["frames"].tolist()
    error = (result[frames] - reference["prediction"]).abs().max().item()
    assert error < 1e-4, f"bundled model output changed by {error:.2e}"


def test_bundled_model_beats_repeating_the_first_frame_on_videos_it_never_saw(tmp_path):
    """The bundled model's promise (docs/bundled-model.md): reconstruction L1 at least 10 % below
    the trivial baseline on a sprites split of a seed it was not trained on, read back from mp4."""
    from fomm.data.synthetic import make_dataset
    from fomm.evaluation.protocol import evaluate_dataset

    torch.set_num_threads(1)
    root = make_dataset("sprites", tmp_path / "unseen", videos=12, frames=32, size=64, seed=4242,
                        test_fraction=0.5, video_format="mp4", workers=1).out
    result = evaluate_dataset(fomm.load_checkpoint(BUNDLED_CHECKPOINT), root, keypoint_metrics=False)
    assert len(result.videos) >= 4
    model_l1, baseline_l1 = result.value("L1"), result.value("L1_first_frame")
    assert model_l1 <= 0.9 * baseline_l1, f"L1 {model_l1:.4f} against {baseline_l1:.4f} for repeating frame 0"


def test_bundled_model_is_small():
    assert BUNDLED_CHECKPOINT.stat().st_size < 10e6
    assert fomm.read_checkpoint(BUNDLED_CHECKPOINT).training_state.keys() <= {"epoch"}


@pytest.fixture(scope="module")
def installed_fomm(tmp_path_factory) -> Path:
    """fomm built as a wheel and installed into a fresh virtual environment whose other packages
    come from the test environment (so nothing is downloaded). Returns its bin folder."""
    root = tmp_path_factory.mktemp("installed")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(root / "dist"), str(REPO)], check=True, timeout=300)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next((root / "dist").glob("fomm-*.whl"))
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, timeout=300)
    return venv / "bin"


def test_demo_runs_from_the_installed_package(installed_fomm, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    where = subprocess.run([str(installed_fomm / "python"), "-c", "import fomm; print(fomm.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert str(installed_fomm.parent) in where.stdout, "fomm must come from the installed wheel"
    result = subprocess.run([str(installed_fomm / "fomm"), "demo", "--out", "out", "--device", "cpu"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / "out"
    expected = video_info(BUNDLED_DRIVING).num_frames
    for name in ("result.mp4", "side_by_side.mp4", "result.gif"):
        frames = read_video(out / name)
        assert len(frames) == expected and frames.std() > 5, name
    assert video_info(out / "side_by_side.mp4").width == 3 * 64
    picture = iio.imread(out / "keypoints.png")
    assert picture.ndim == 3 and picture.shape[0] > 100
    assert "result.mp4" in result.stdout and "Next:" in result.stdout


def test_animate_without_inputs_uses_the_bundled_defaults(tmp_path):
    from fomm.cli import main

    out = tmp_path / "default.mp4"
    assert main(["animate", "--out", str(out), "--device", "cpu"]) == 0
    assert video_info(out).num_frames == video_info(BUNDLED_DRIVING).num_frames
