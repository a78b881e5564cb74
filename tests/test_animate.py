"""Animation: the Animator API and `fomm animate` end to end on real files."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import fomm
from tests.cli_runner import Finished, run_fomm
from fomm.animate import Animator
from fomm.data.frames import fit_frames
from fomm.cli import main
from fomm.data.video import read_video, video_info, write_video

from .test_video_io import make_video_with_audio

from .conftest import fresh_cache


def moving_scene(num_frames: int = 6, size: int = 64) -> np.ndarray:
    """A bright disc moving right over a gradient: (T, H, W, 3) uint8."""
    rows, cols = np.mgrid[0:size, 0:size]
    frames = []
    for t in range(num_frames):
        image = np.stack([cols / size, rows / size, np.full((size, size), 0.3)], axis=-1)
        disc = (rows - size / 2) ** 2 + (cols - 16 - 4 * t) ** 2 < 64
        image[disc] = [1.0, 0.9, 0.1]
        frames.append(image)
    return (np.stack(frames) * 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def animate_cache(tmp_path_factory, monkeypatch):
    """`fomm animate` defaults to --precision auto --backend auto, which remember their choice
    in FOMM_CACHE: keep it out of the home folder."""
    monkeypatch.setenv("FOMM_CACHE", str(fresh_cache(tmp_path_factory.getbasetemp() / "animate-cache")))


@pytest.fixture(scope="module")
def model(reference_dir):
    return fomm.load_checkpoint(reference_dir / "checkpoint.pth.tar", config=reference_dir / "config.yaml")


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    return fomm.save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", model)


@pytest.fixture()
def media(tmp_path):
    frames = moving_scene()
    driving = write_video(tmp_path / "driving.mp4", frames, fps=12)
    source = tmp_path / "source.png"
    iio.imwrite(source, frames[0])
    return source, driving


def test_relative_with_source_equal_to_first_frame_reproduces_driving_motion(model):
    frames = fit_frames(moving_scene(), 64, 64)
    relative = Animator(model, relative=True).animate(frames[0], frames)
    absolute = Animator(model, relative=False).animate(frames[0], frames)
    assert torch.allclose(relative, absolute, atol=1e-5)
    with torch.no_grad():
        kp = model.kp_detector(frames)
        direct = model.generator(frames[:1].expand(len(frames), -1, -1, -1), kp_source=kp[0:1].expand(len(frames)),
                                 kp_driving=kp).prediction
    assert torch.allclose(relative, direct, atol=1e-5)


def test_one_frame_at_a_time_gives_the_same_frames_as_animate(model):
    """Live mode's case of the loop: batches of one frame as they arrive."""
    frames = fit_frames(moving_scene(), 64, 64)
    source = torch.rand(3, 64, 64)
    batched = Animator(model, batch_size=4).animate(source, frames)
    streamed = torch.cat([batch.prediction for batch in Animator(model).batches(source, (f[None] for f in frames))])
    assert streamed.shape == batched.shape == (6, 3, 64, 64)
    assert torch.allclose(streamed, batched, atol=1e-5)


def test_best_frame_is_the_driving_frame_equal_to_the_source(model):
    frames = fit_frames(moving_scene(), 64, 64)
    animator = Animator(model)
    assert animator.find_best_frame(frames[3], frames) == 3
    result = animator.animate(frames[3], frames, best_frame=3)
    assert result.shape == frames.shape
    # From the best frame on, the motion is relative to a frame identical to the source.
    assert torch.allclose(result[3:], Animator(model, relative=False).animate(frames[3], frames[3:]), atol=1e-5)


def test_prepare_frames_resizes_and_crops_any_size():
    wide = np.zeros((2, 30, 90, 3), dtype=np.uint8)
    wide[:, :, 30:60] = 255  # white centre third
    assert fit_frames(wide, 64, 64).shape == (2, 3, 64, 64)
    cropped = fit_frames(wide, 64, 64, crop=True)
    assert cropped.min() == 1.0  # the centre square is all white


def test_cli_animate_end_to_end(checkpoint, media, tmp_path):
    source, driving = media
    out, gif, panels = tmp_path / "result.mp4", tmp_path / "result.gif", tmp_path / "side.mp4"
    code = main(["animate", "--checkpoint", str(checkpoint), "--source", str(source), "--driving", str(driving),
                 "--out", str(out), "--gif", str(gif), "--side-by-side", str(panels), "--device", "cpu"])
    assert code == 0
    info = video_info(out)
    assert info.num_frames == 6 and info.fps == pytest.approx(12) and (info.height, info.width) == (64, 64)
    assert len(read_video(gif)) == 6
    # Three 64-pixel panels, each in a one-pixel frame (the config's visualizer_params.draw_border).
    assert video_info(panels).width == 3 * (64 + 2)


def test_cli_keeps_audio_and_finds_best_frame(checkpoint, media, tmp_path):
    source, _ = media
    driving = make_video_with_audio(tmp_path / "talking.mp4")
    out = tmp_path / "with-audio.mp4"
    assert main(["animate", "--checkpoint", str(checkpoint), "--source", str(source), "--driving", str(driving),
                 "--out", str(out), "--audio", "--find-best-frame", "--adapt-scale", "--fps", "10"]) == 0
    info = video_info(out)
    assert info.has_audio and info.fps == pytest.approx(10) and info.num_frames == 25


def test_original_checkpoint_with_config(reference_dir, media, tmp_path):
    source, driving = media
    out = tmp_path / "orig.mp4"
    assert main(["animate", "--checkpoint", str(reference_dir / "checkpoint.pth.tar"), "--config",
                 str(reference_dir / "config.yaml"), "--source", str(source), "--driving", str(driving),
                 "--out", str(out), "--absolute"]) == 0
    assert video_info(out).num_frames == 6


def run_cli(*args: str) -> Finished:
    return run_fomm(*args)


@pytest.mark.parametrize("case", ["missing-source", "missing-driving", "empty-driving", "not-an-image",
                                  "wrong-config", "original-without-config"])
def test_bad_input_is_one_line_error_and_no_output(case, checkpoint, media, tmp_path, reference_dir):
    source, driving = media
    args = {"--checkpoint": str(checkpoint), "--source": str(source), "--driving": str(driving)}
    expected = ""
    if case == "missing-source":
        args["--source"], expected = str(tmp_path / "nope.png"), "source not found"
    elif case == "missing-driving":
        args["--driving"], expected = str(tmp_path / "nope.mp4"), "nope.mp4"
    elif case == "empty-driving":
        (tmp_path / "empty").mkdir()
        args["--driving"], expected = str(tmp_path / "empty"), "empty"
    elif case == "not-an-image":
        bad = tmp_path / "bad.png"
        bad.write_bytes(b"this is not a png")
        args["--source"], expected = str(bad), "bad.png"
    elif case == "wrong-config":
        args["--checkpoint"] = str(reference_dir / "checkpoint.pth.tar")
        args["--config"] = str(Path(fomm.__file__).parent / "configs" / "vox-256.yaml")
        expected = "do not fit"
    elif case == "original-without-config":
        args["--checkpoint"], expected = str(reference_dir / "checkpoint.pth.tar"), "--config"
    out = tmp_path / "out.mp4"
    flat = [item for pair in args.items() for item in pair]
    result = run_cli("animate", *flat, "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("fomm animate: error:") and expected in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.glob("out*")) == []
