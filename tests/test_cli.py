"""The command line as a user meets it: one-line errors, the original demo.py's flags, packaged
config names from any folder, the config's motion defaults, and dataset-level animation."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import fomm
from tests.cli_runner import Finished, run_fomm
from fomm.assets import BUNDLED_DRIVING, BUNDLED_SOURCE
from fomm.config import PACKAGED_CONFIGS
from fomm.data.synthetic import make_dataset
from fomm.data.video import read_video, video_info


#: The exact path: `auto` measures speed, and may choose another arithmetic from one run to the next.
EXACT = ("--precision", "fp32", "--backend", "torch")
#: The model shipped before the bundled one, whose architecture is a packaged config's (sprites-64-blend).
STAGE4_CHECKPOINT = Path(__file__).resolve().parents[1] / "candidates" / "sprites-64-stage4.pt"


def run_cli(*args: str, cwd: Path | None = None) -> Finished:
    return run_fomm(*args, cwd=cwd)


def assert_one_line_error(result: Finished, command: str, expected: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fomm {command}".strip() + ": error:"), result.stderr
    assert expected in lines[0]


# Files a case needs, made in its (otherwise empty) working folder before the command runs.
def _garbage_checkpoint(folder: Path) -> None:
    (folder / "model.pth.tar").write_bytes(bytes(range(256)) * 40)


def _meta_is_a_list(folder: Path) -> None:
    make_dataset(kind="sprites", out=folder / "ds", videos=4, frames=3, size=32, seed=0, workers=1, progress=False)
    (folder / "ds" / "meta.json").write_text("[1, 2, 3]")


def _object_array_ground_truth(folder: Path) -> None:
    make_dataset(kind="sprites", out=folder / "ds", videos=4, frames=3, size=32, seed=0, workers=1, progress=False)
    for truth in (folder / "ds").rglob("*.npz"):
        np.savez(truth, keypoints=np.array([{"not": "numbers"}], dtype=object), visibility=np.ones(1))


def _empty_scales(folder: Path) -> None:
    data = yaml.safe_load((PACKAGED_CONFIGS / "sprites-64.yaml").read_text())
    data["train_params"]["scales"] = []
    (folder / "empty-scales.yaml").write_text(yaml.safe_dump(data))


def _garbage_vgg(folder: Path) -> None:
    data = yaml.safe_load((PACKAGED_CONFIGS / "sprites-64.yaml").read_text())
    make_dataset(kind="sprites", out=folder / "ds", videos=4, frames=3, size=64, seed=0, workers=1, progress=False)
    data["dataset_params"]["root_dir"] = str(folder / "ds")
    data["train_params"].update(perceptual_backbone="vgg19", vgg19_weights=str(folder / "vgg19.pth"))
    data["train_params"]["loss_weights"]["perceptual"] = [1, 1, 1, 1, 1]
    (folder / "vgg.yaml").write_text(yaml.safe_dump(data))
    (folder / "vgg19.pth").write_bytes(b"garbage" * 100)


# One row per mistake a user makes: the command, what the one-line error must say, and the files
# it needs. Every case must exit 2 with one line, and write nothing.
CASES = [
    (["animate", "--device", "cuda"], "CUDA is not available", None),
    (["animate", "--device", "gpu"], "unknown device 'gpu'", None),
    (["visualize", "--device", "cuda"], "CUDA is not available", None),
    (["demo", "--device", "cuda:3"], "CUDA", None),
    (["train", "--config", "sprites-64", "--device", "cuda"], "CUDA is not available", None),
    (["train", "--config", "sprites-64", "--device", "gpu"], "unknown device 'gpu'", None),
    (["train", "--config", "sprites-64", "--max-steps", "0"], "--max-steps: must be at least 1", None),
    (["train", "--config", "sprites-64", "--max-steps", "-1"], "--max-steps: must be at least 1", None),
    (["train", "--config", "sprites-64", "--threads", "0"], "--threads: must be at least 1", None),
    (["train", "--config", "empty-scales.yaml"], "train_params.scales", _empty_scales),
    (["train", "--config", "vgg.yaml", "--max-steps", "1"], "vgg19.pth", _garbage_vgg),
    (["make-dataset", "sprites", "--out", "ds", "--size", "7", "--videos", "1"], "size >= 8", None),
    (["make-dataset", "sprites", "--out", "ds", "--videos", "0"], "videos >= 1", None),
    (["make-dataset", "sprites", "--out", "ds", "--size", "0"], "size >= 8", None),
    (["make-dataset", "sprites", "--out", "ds", "--test-fraction", "1.5"], "test_fraction must be in [0, 1]", None),
    (["make-dataset", "sprites", "--out", "ds", "--size", "33", "--format", "mp4"], "even frame size", None),
    (["make-dataset", "sprites", "--out", "ds", "--size", "100000"], "above 1024", None),
    (["train-landmarks", "--dataset", "ds", "--out", "landmarks.pt"], "meta.json: expected a JSON object",
     _meta_is_a_list),
    (["evaluate", "--dataset", "ds", "--out", "results"], "not a readable ground-truth file",
     _object_array_ground_truth),
    (["export", "--opset", "3"], "--opset", None),
    (["animate", "--checkpoint", "model.pth.tar"], "not a checkpoint", _garbage_checkpoint),
    (["animate", "--config", "no-such-config"], "packaged configs", None),
    (["animate", "--best-frame", "999"], "out of range", None),
    (["animate", "--threads", "0"], "--threads: must be at least 1", None),
    (["animate", "--threads", "-1"], "--threads: must be at least 1", None),
    # OpenMP sized its pool to this and aborted the process ("libgomp: Out of memory"): found by the fuzz.
    (["animate", "--threads", "1000000000"], "--threads: at most 1024", None),
    (["train", "--config", "sprites-64", "--threads", "1000000000"], "--threads: at most 1024", None),
    (["animate", "--batch-size", "0"], "--batch-size: must be at least 1", None),
    (["animate", "--fps", "nan"], "--fps must be a number", None),
    (["animate", "--fps", "inf"], "--fps must be a number", None),
    (["animate", "--fps", "0"], "--fps must be a number", None),
    (["animate", "--fps", "0.0001"], "--fps must be a number", None),
    (["animate", "--out", "."], "is a folder", None),
    (["animate", "--out", "missing/result.mp4"], "does not exist", None),
    (["animate", "--out", "result.avi"], "unknown extension", None),
    (["animate", "--out", "a.mp4", "--side-by-side", "a.mp4"], "two outputs", None),
    (["animate", "--gif", "bad.png"], "unknown extension", None),
    (["animate", "--checkpoint", "."], "not a file", None),
    (["nonsense"], "invalid choice", None),
]


@pytest.mark.parametrize("argv, expected, setup", CASES,
                         ids=[" ".join(argv) + (f" [{setup.__name__[1:]}]" if setup else "") for argv, _, setup in CASES])
def test_user_errors_are_one_line_with_exit_status_2(argv, expected, setup, tmp_path):
    if "cuda" in " ".join(argv) and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    if setup is not None:
        setup(tmp_path)
    before = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))
    result = run_cli(*argv, cwd=tmp_path)
    assert_one_line_error(result, argv[0] if argv[0] != "nonsense" else "", expected)
    assert "Traceback" not in result.stderr
    assert sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*")) == before  # nothing written


def test_an_output_over_its_input_is_refused_and_the_input_kept(tmp_path):
    driving = tmp_path / "driving.mp4"
    driving.write_bytes(BUNDLED_DRIVING.read_bytes())
    result = run_cli("animate", "--driving", str(driving), "--out", str(driving))
    assert_one_line_error(result, "animate", "would destroy the input")
    assert driving.read_bytes() == BUNDLED_DRIVING.read_bytes()


def test_every_output_is_written(tmp_path):
    out, panels, gif = tmp_path / "result.mp4", tmp_path / "panels.mp4", tmp_path / "result.gif"
    result = run_cli("animate", "--out", str(out), "--gif", str(gif), "--side-by-side", str(panels), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["panels.mp4", "result.gif", "result.mp4"]
    assert video_info(panels).num_frames == video_info(out).num_frames == len(read_video(gif))


def test_the_original_demo_py_flags_work(tmp_path):
    out = tmp_path / "demo_py.mp4"
    result = run_cli("animate", "--source_image", str(BUNDLED_SOURCE), "--driving_video", str(BUNDLED_DRIVING),
                     "--result_video", str(out), "--relative", "--adapt_scale", "--find_best_frame", "--cpu",
                     "--checkpoint", str(STAGE4_CHECKPOINT),
                     "--config", str(PACKAGED_CONFIGS / "sprites-64-blend.yaml"))
    assert result.returncode == 0, result.stderr
    assert video_info(out).num_frames == video_info(BUNDLED_DRIVING).num_frames


def test_best_frame_spellings_agree_and_change_the_reference_frame(tmp_path):
    outputs = {}
    for name, flags in {"default": [], "dash": ["--best-frame", "5"], "underscore": ["--best_frame", "5"]}.items():
        outputs[name] = tmp_path / f"{name}.gif"  # GIF: encoded deterministically, unlike x264
        result = run_cli("animate", "--out", str(outputs[name]), "--device", "cpu", *EXACT, *flags)
        assert result.returncode == 0, result.stderr
    frames = {name: read_video(path).astype(np.int16) for name, path in outputs.items()}
    # One thread and the same input: the animation is deterministic, and so is a GIF's encoding.
    assert np.array_equal(frames["dash"], frames["underscore"])
    assert np.abs(frames["dash"] - frames["default"]).mean() > 1.0  # another reference pose


def _original_layout_checkpoint(path: Path, config_name: str) -> Path:
    """A checkpoint as the original ``Logger.save_cpk`` writes it: state dicts, no config."""
    model = fomm.build_model(fomm.load_config(config_name))
    torch.save({name: getattr(model, name).state_dict() for name in ("generator", "kp_detector", "discriminator")}
               | {"epoch": 0}, path)
    return path


def test_a_packaged_config_name_works_from_any_folder(tmp_path):
    checkpoint = _original_layout_checkpoint(tmp_path / "original.pth.tar", "sprites-64")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for config in ("sprites-64", "sprites-64.yaml", "configs/sprites-64.yaml"):
        result = run_cli("visualize", "--checkpoint", str(checkpoint), "--config", config, "--out", "motion.png",
                         "--device", "cpu", cwd=elsewhere)
        assert result.returncode == 0, result.stderr
        assert (elsewhere / "motion.png").stat().st_size > 10_000
        (elsewhere / "motion.png").unlink()


def _config_with_motion_defaults(tmp_path: Path, reference_dir: Path, relative: bool) -> Path:
    data = yaml.safe_load((reference_dir / "config.yaml").read_text())
    data.setdefault("animate_params", {})["normalization_params"] = {
        "adapt_movement_scale": False, "use_relative_movement": relative, "use_relative_jacobian": True}
    path = tmp_path / f"relative-{relative}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_configs_normalization_params_are_the_defaults_of_animate(tmp_path, reference_dir):
    checkpoint = reference_dir / "checkpoint.pth.tar"

    def animate(config: Path, name: str, *flags: str) -> np.ndarray:
        out = tmp_path / f"{name}.gif"
        result = run_cli("animate", "--checkpoint", str(checkpoint), "--config", str(config), "--out", str(out),
                         "--device", "cpu", *EXACT, *flags)
        assert result.returncode == 0, result.stderr
        return read_video(out)

    absolute_config = _config_with_motion_defaults(tmp_path, reference_dir, relative=False)
    relative_config = _config_with_motion_defaults(tmp_path, reference_dir, relative=True)
    absolute = animate(absolute_config, "absolute-by-config")
    assert np.array_equal(absolute, animate(relative_config, "absolute-by-flag", "--absolute"))
    relative = animate(relative_config, "relative-by-config")
    assert np.array_equal(relative, animate(absolute_config, "relative-by-flag", "--relative"))
    assert np.abs(absolute.astype(np.int16) - relative).mean() > 0.3


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pairs") / "sprites"
    make_dataset(kind="sprites", out=root, videos=8, frames=5, size=64, seed=3, test_fraction=0.5, workers=1,
                 progress=False)
    return root


def test_animate_a_datasets_pairs(small_dataset, tmp_path):
    out = tmp_path / "animations"
    result = run_cli("animate", "--dataset", str(small_dataset), "--out", str(out), "--num-pairs", "3",
                     "--device", "cpu")
    assert result.returncode == 0, result.stderr
    written = sorted(out.iterdir())
    assert len(written) == 3 and all(path.suffix == ".mp4" for path in written)
    for path in written:  # <source>-<driving>.mp4, as long as the driving video
        driving = path.stem.split("-")[-1]
        assert video_info(path).num_frames == len(read_video(next((small_dataset / "test").glob(f"{driving}.*"))))


def test_animate_the_pairs_of_a_csv(small_dataset, tmp_path):
    names = sorted(path.stem for path in (small_dataset / "test").iterdir())
    pairs = tmp_path / "pairs.csv"
    with open(pairs, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "driving"])
        writer.writerows([(names[0], names[1]), (names[2], names[0])])
    out = tmp_path / "animations"
    result = run_cli("animate", "--dataset", str(small_dataset), "--pairs", str(pairs), "--out", str(out),
                     "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in out.iterdir()) == sorted([f"{names[0]}-{names[1]}.mp4",
                                                                  f"{names[2]}-{names[0]}.mp4"])


def test_sigterm_during_writing_leaves_no_partial_file(tmp_path):
    """A killed job (SIGTERM: a closed terminal, a scheduler's stop) unwinds like Ctrl-C: exit 130,
    and neither the outputs nor their temporaries are left behind."""
    import signal
    import time

    import cv2

    from fomm.data.video import iter_frames, write_video

    base = [cv2.resize(frame, (256, 256)) for frame in iter_frames(BUNDLED_DRIVING)]
    clip = write_video(tmp_path / "long.mp4", (base[index % len(base)] for index in range(640)), fps=25)
    work = tmp_path / "work"
    work.mkdir()
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-m", "fomm.cli", "animate", "--driving", str(clip), "--out",
                                "result.mp4", "--gif", "result.gif", *EXACT], cwd=work, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(work.glob(".*partial*")) and process.poll() is None:  # writing has begun
        assert time.monotonic() < deadline, "no temporary file appeared"
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert sorted(path.name for path in work.iterdir()) == []
