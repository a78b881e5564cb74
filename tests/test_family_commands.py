"""Every command with a model of each family, as a user runs it: an original TPSMM and MRAA
checkpoint (the reference fixtures' small architectures, in their original layout) through
``fomm animate`` (a face crop and the best reference frame, every output, a dataset's pairs),
``fomm visualize``, ``fomm live``, the web app's request and ``fomm evaluate`` (self-reconstruction
with the flow metric, and cross-identity animation against the truth). (Training, the AVD stage and export
have their own tests: tests/test_family_training.py, tests/test_families.py.)"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

import fomm
from fomm.app.job import AnimationOptions, run_animation
from fomm.assets import BUNDLED_DRIVING, BUNDLED_SOURCE
from fomm.cli import main
from fomm.data.synthetic import make_dataset
from fomm.data.video import read_video, video_info

from .reference_fixtures import fixture, original_checkpoint

FAMILIES = ["tpsmm", "mraa"]
EXACT = ["--precision", "fp32", "--backend", "torch"]


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request, tmp_path_factory):
    """(family, checkpoint file, its config) of an original checkpoint of each family."""
    folder = tmp_path_factory.mktemp(request.param)
    checkpoint = folder / f"{request.param}.pth.tar"
    torch.save(original_checkpoint(request.param), checkpoint)
    config = folder / f"{request.param}.yaml"
    shutil.copyfile(fixture(request.param, "config.yaml"), config)
    return request.param, checkpoint, config


def test_animate_with_every_output_and_the_best_reference_frame(family_model, tmp_path, capsys):
    family, checkpoint, config = family_model
    out, gif, panels = tmp_path / "result.mp4", tmp_path / "result.gif", tmp_path / "panels.mp4"
    assert main(["animate", "--checkpoint", str(checkpoint), "--config", str(config), *EXACT, "--crop", "center",
                 "--find-best-frame", "--out", str(out), "--gif", str(gif), "--side-by-side", str(panels)]) == 0
    frames = video_info(BUNDLED_DRIVING).num_frames
    assert video_info(out).num_frames == video_info(gif).num_frames == video_info(panels).num_frames == frames
    assert (video_info(panels).height, video_info(panels).width) == (66, 3 * 66)  # three bordered 64x64 panels
    assert "torch fp32" in capsys.readouterr().out


def test_animate_a_datasets_pairs(family_model, sprites_64, tmp_path, capsys):
    family, checkpoint, config = family_model
    out = tmp_path / "pairs"
    assert main(["animate", "--checkpoint", str(checkpoint), "--config", str(config), *EXACT, "--dataset",
                 str(sprites_64), "--num-pairs", "2", "--out", str(out)]) == 0
    written = sorted(out.iterdir())
    assert len(written) == 2 and all(path.suffix == ".mp4" for path in written)


def test_visualize_draws_the_familys_motion(family_model, tmp_path):
    family, checkpoint, config = family_model
    picture = tmp_path / "motion.png"
    assert main(["visualize", "--checkpoint", str(checkpoint), "--config", str(config), "--frame", "5",
                 "--out", str(picture)]) == 0
    assert picture.stat().st_size > 10_000


def test_live_from_a_file(family_model, tmp_path, capsys):
    family, checkpoint, config = family_model
    out = tmp_path / "live.mp4"
    assert main(["live", "--checkpoint", str(checkpoint), "--config", str(config), *EXACT, "--threads", "1",
                 "--input", str(BUNDLED_DRIVING), "--no-window", "--out", str(out)]) == 0
    assert video_info(out).num_frames == video_info(BUNDLED_DRIVING).num_frames
    assert "torch fp32" in capsys.readouterr().out


def test_the_web_apps_request(family_model, tmp_path):
    family, checkpoint, config = family_model
    model = fomm.load_checkpoint(checkpoint, config=config)
    outputs = run_animation(model, BUNDLED_SOURCE, BUNDLED_DRIVING, AnimationOptions(precision="fp32", backend="torch"),
                            tmp_path, checkpoint=checkpoint)
    assert all(path.is_file() for path in outputs.files) and outputs.motion == model.default_motion().mode
    assert outputs.num_frames == video_info(BUNDLED_DRIVING).num_frames and outputs.note is None
    frames = read_video(outputs.result)
    assert frames.shape[1:] == (64, 64, 3) and np.ptp(frames) > 0


@pytest.fixture(scope="module")
def cross_pairs(tmp_path_factory):
    """A small sprites dataset with two cross-identity pairs and their ground truth."""
    root = tmp_path_factory.mktemp("cross") / "sprites"
    make_dataset("sprites", root, videos=4, frames=6, size=64, seed=77, test_fraction=0.5, workers=1,
                 cross_pairs=2, progress=False)
    return root


@pytest.fixture(scope="module")
def warped_photos(tmp_path_factory):
    """A small warped-photos dataset: its ground truth has dense flow."""
    root = tmp_path_factory.mktemp("warped") / "photos"
    make_dataset("warped-photos", root, videos=4, frames=4, size=64, seed=78, test_fraction=0.5, workers=1,
                 progress=False)
    return root


def _metrics(folder):
    data = json.loads((folder / "metrics.json").read_text())
    return data, {name: row["value"] for name, row in data["metrics"].items()}


def test_evaluate_reconstruction_and_cross_identity(family_model, warped_photos, cross_pairs, tmp_path):
    family, checkpoint, config = family_model
    model = ["--checkpoint", str(checkpoint), "--config", str(config), "--device", "cpu", "--embedding", "none"]
    out = tmp_path / "reconstruction"
    assert main(["evaluate", *model, "--dataset", str(warped_photos), "--num-videos", "2", "--max-train-videos", "2",
                 "--out", str(out)]) == 0
    _, metrics = _metrics(out)
    # the family's own points feed the keypoint regression; its dense motion, the flow metric
    for name in ("L1", "keypoint_error", "jitter", "kp_acceleration", "flow_epe"):
        assert metrics[name] is not None and math.isfinite(metrics[name]) and metrics[name] >= 0, name
    out = tmp_path / "cross"
    assert main(["evaluate", "--cross-identity", *model, "--dataset", str(cross_pairs), "--out", str(out)]) == 0
    data, metrics = _metrics(out)
    assert data["settings"]["protocol"] == "cross-identity" and len(data["pairs"]) == 2
    assert metrics["L1_moving"] > 0 and metrics["L1_moving_repeat_source"] > 0
