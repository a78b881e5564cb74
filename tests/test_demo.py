"""The embedded default: the bundled model and media, and `fomm demo` from an installed wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import imageio.v3 as iio
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
    result = Animator.with_settings(model, model.default_motion()).animate(source, driving)
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


def test_the_wheel_holds_every_module_config_and_asset(tmp_path):
    """What a user installs: the wheel has every module of the package, the packaged configs, the
    bundled model and media, and the `fomm` command (its contents are read, not installed: the
    README's commands run the installed package in tests/test_docs_commands.py)."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(REPO)], check=True, timeout=300)
    wheel = next(tmp_path.glob("fomm-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(name).decode() for name in names if name.endswith("entry_points.txt"))
    package = REPO / "src"
    expected = {path.relative_to(package).as_posix() for path in (package / "fomm").rglob("*")
                if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".yaml", ".pt", ".png",
                                                                                          ".mp4")}
    assert expected - names == set(), "missing from the wheel"
    assert {"fomm/assets/sprites-64.pt", "fomm/configs/vox-256.yaml", "fomm/configs/tpsmm-vox-256.yaml",
            "fomm/configs/mraa-vox256.yaml"} <= names
    assert "fomm = fomm.cli:main" in entry_points


def test_demo_writes_every_output(tmp_path, capsys):
    from fomm.cli import main

    out = tmp_path / "out"
    assert main(["demo", "--out", str(out), "--device", "cpu"]) == 0
    expected = video_info(BUNDLED_DRIVING).num_frames
    for name in ("result.mp4", "side_by_side.mp4", "result.gif"):
        frames = read_video(out / name)
        assert len(frames) == expected and frames.std() > 5, name
    assert video_info(out / "side_by_side.mp4").width == 3 * (64 + 2)  # bordered panels (visualizer_params)
    picture = iio.imread(out / "keypoints.png")
    assert picture.ndim == 3 and picture.shape[0] > 100
    printed = capsys.readouterr().out
    assert "result.mp4" in printed and "Next:" in printed


def test_animate_without_inputs_uses_the_bundled_defaults(tmp_path):
    from fomm.cli import main

    out = tmp_path / "default.mp4"
    assert main(["animate", "--out", str(out), "--device", "cpu"]) == 0
    assert video_info(out).num_frames == video_info(BUNDLED_DRIVING).num_frames
