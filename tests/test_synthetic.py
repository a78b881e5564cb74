"""Tests of the synthetic datasets: determinism, layout, and ground truth against the pixels."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fomm.data.synthetic import (
    JOINT_NAMES,
    JOINT_OWNERS,
    generate_sprite_video,
    generate_warped_video,
    load_ground_truth,
    make_dataset,
)
from fomm.errors import DataError
from fomm.data.synthetic.sprites import SpriteFigure
from fomm.data.synthetic.common import video_rng
from fomm.data.synthetic.warped_photos import bilinear_sample

SIZE = 64


def _to_pixel(kp: np.ndarray, size: int = SIZE) -> np.ndarray:
    """(x, y) in [-1, 1] -> nearest integer (col, row)."""
    return np.rint((kp + 1.0) * (size - 1) / 2.0).astype(int)


# --------------------------------------------------------------------------------------------
# determinism


@pytest.mark.parametrize("generate", [generate_sprite_video, generate_warped_video])
def test_generation_deterministic_per_seed(generate) -> None:
    a = generate(3, 5, 8, SIZE)
    b = generate(3, 5, 8, SIZE)
    c = generate(4, 5, 8, SIZE)
    assert a.frames.tobytes() == b.frames.tobytes()
    assert a.keypoints.tobytes() == b.keypoints.tobytes()
    assert a.visibility.tobytes() == b.visibility.tobytes()
    if a.flow is not None:
        assert a.flow.tobytes() == b.flow.tobytes()
    assert not np.array_equal(a.frames, c.frames)
    assert not np.allclose(a.keypoints, c.keypoints)


@pytest.mark.parametrize("generate", [generate_sprite_video, generate_warped_video])
def test_more_frames_extend_the_same_video(generate) -> None:
    short = generate(0, 2, 6, SIZE)
    long = generate(0, 2, 12, SIZE)
    np.testing.assert_array_equal(short.frames, long.frames[:6])
    np.testing.assert_allclose(short.keypoints, long.keypoints[:6], atol=1e-6)


def test_shapes_and_ranges() -> None:
    s = generate_sprite_video(0, 0, 5, SIZE, return_labels=True)
    assert s.frames.shape == (5, SIZE, SIZE, 3) and s.frames.dtype == np.uint8
    assert s.keypoints.shape == (5, len(JOINT_NAMES), 2) and s.keypoints.dtype == np.float32
    assert s.visibility.shape == (5, len(JOINT_NAMES)) and s.visibility.dtype == bool
    assert s.labels.shape == (5, SIZE, SIZE) and s.flow is None
    w = generate_warped_video(0, 0, 5, SIZE)
    assert w.flow.shape == (5, SIZE, SIZE, 2) and w.flow.dtype == np.float32
    assert w.keypoints.shape == (5, 16, 2)
    # Frame 0's flow is the identity grid: x = 2*col/(W-1) - 1.
    grid = np.linspace(-1, 1, SIZE)
    np.testing.assert_allclose(w.flow[0, 7, :, 0], grid, atol=1e-6)
    np.testing.assert_allclose(w.flow[0, :, 9, 1], grid, atol=1e-6)


# --------------------------------------------------------------------------------------------
# sprites: ground truth against what is drawn


def test_sprite_keypoints_lie_on_their_parts() -> None:
    """Visible joints sit on an owner part's pixels; hidden in-frame ones under a nearer part."""
    visible_hits = visible_total = hidden_hits = hidden_total = 0
    for index in range(6):
        video = generate_sprite_video(1, index, 16, SIZE, return_labels=True)
        depth = SpriteFigure.sample(video_rng(1, "sprites", index)).depth
        for t in range(video.frames.shape[0]):
            for j, owners in enumerate(JOINT_OWNERS):
                x, y = video.keypoints[t, j]
                if abs(x) > 1 or abs(y) > 1:
                    assert not video.visibility[t, j]
                    continue
                col, row = _to_pixel(video.keypoints[t, j])
                label = int(video.labels[t, row, col]) - 1  # -1 = background
                neighbourhood = video.labels[t, max(row - 1, 0):row + 2, max(col - 1, 0):col + 2] - 1
                if video.visibility[t, j]:
                    visible_total += 1
                    visible_hits += label in owners
                    # The pixel-centre rounding may cross a boundary, never by more than a pixel.
                    assert any(int(p) in owners for p in neighbourhood.ravel())
                else:
                    hidden_total += 1
                    in_front = label >= 0 and label not in owners and depth[label] > min(
                        depth[o] for o in owners)
                    hidden_hits += in_front
    assert visible_total > 300 and hidden_total > 10  # occlusion really happens
    assert visible_hits / visible_total > 0.95
    assert hidden_hits / hidden_total > 0.8


def test_sprite_label_map_matches_drawn_figure() -> None:
    """Outside the labelled figure (plus its anti-aliased rim) frames show the static background."""
    video = generate_sprite_video(2, 0, 8, SIZE, return_labels=True)
    assert 0.03 < (video.labels[0] > 0).mean() < 0.6
    kernel = np.ones((3, 3), np.uint8)
    for t in range(1, 8):
        union = ((video.labels[0] > 0) | (video.labels[t] > 0)).astype(np.uint8)
        near = cv2.dilate(union, kernel) > 0
        np.testing.assert_array_equal(video.frames[0][~near], video.frames[t][~near])
        # ...and the figure is drawn where it is labelled: frames differ there.
        moved = (video.labels[0] != video.labels[t])
        changed = np.abs(video.frames[0].astype(int) - video.frames[t].astype(int)).sum(-1) > 0
        assert changed[moved].mean() > 0.9


def _figure_histogram(frames: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Normalised 4x4x4 RGB histogram of figure pixels (away from edges)."""
    core = cv2.erode((labels > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    pixels = frames[core] // 64
    hist = np.bincount(pixels[:, 0] * 16 + pixels[:, 1] * 4 + pixels[:, 2], minlength=64)
    return hist / max(hist.sum(), 1)


def test_sprite_appearance_fixed_within_video_and_varies_between() -> None:
    within, between = [], []
    hists = []
    for index in range(4):
        video = generate_sprite_video(0, index, 24, SIZE, return_labels=True)
        a = _figure_histogram(video.frames[:4], video.labels[:4])
        b = _figure_histogram(video.frames[-4:], video.labels[-4:])
        within.append(0.5 * np.abs(a - b).sum())  # total variation distance
        hists.append(a)
    for i in range(len(hists)):
        for j in range(i + 1, len(hists)):
            between.append(0.5 * np.abs(hists[i] - hists[j]).sum())
    assert max(within) < min(between)
    assert np.mean(between) > 0.4


# --------------------------------------------------------------------------------------------
# warped photos: flow and keypoints against the pixels


def test_warped_flow_reproduces_frames() -> None:
    for index in range(3):
        video = generate_warped_video(0, index, 12, SIZE)
        frames = torch.from_numpy(video.frames).permute(0, 3, 1, 2).float() / 255.0
        frame0 = frames[:1].expand(len(frames), -1, -1, -1)
        rebuilt = F.grid_sample(frame0, torch.from_numpy(video.flow), align_corners=True)
        error = (rebuilt - frames).abs().mean(1).numpy()  # (T, H, W)
        # Away from borders: where the source point lies inside frame 0 by a pixel's margin.
        inside = (np.abs(video.flow) <= 1.0 - 2.0 / SIZE).all(-1)
        assert inside[1:].mean() > 0.5
        assert error[inside].mean() < 0.02
        # And the warp does move things (by more than a pixel somewhere).
        assert np.abs(video.flow[-1] - video.flow[0]).max() > 2.0 / SIZE


def test_warped_keypoints_agree_with_flow() -> None:
    for index in range(3):
        video = generate_warped_video(0, index, 12, SIZE)
        start = video.keypoints[0]
        pix = (video.keypoints.astype(np.float64) + 1.0) * (SIZE - 1) / 2.0
        for t in range(len(video.keypoints)):
            back = bilinear_sample(video.flow[t], pix[t, :, 0], pix[t, :, 1])
            ok = video.visibility[t]
            np.testing.assert_allclose(back[ok], start[ok], atol=2e-3)
        assert np.abs(video.keypoints[-1] - start).max() > 0.01  # points actually move


# --------------------------------------------------------------------------------------------
# writer, files, CLI


def _read_strip(path: Path, frames: int) -> np.ndarray:
    strip = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]
    h = strip.shape[0]
    return strip.reshape(h, frames, -1, 3).transpose(1, 0, 2, 3)


def test_make_dataset_layout_meta_and_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "sprites"
    summary = make_dataset("sprites", out, videos=5, frames=6, size=SIZE, seed=7, workers=1)
    assert (summary.videos, len(summary.train), len(summary.test)) == (5, 4, 1)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "sprites" and meta["seed"] == 7
    assert meta["num_train"] == 4 and meta["num_test"] == 1 and meta["frames"] == 6
    assert meta["frame_shape"] == [SIZE, SIZE, 3] and meta["video_format"] == "png-strip"
    assert meta["joint_names"] == list(JOINT_NAMES)
    assert all(0 <= a < len(JOINT_NAMES) and 0 <= b < len(JOINT_NAMES)
               for a, b in meta["skeleton_edges"])
    assert sorted(p.name for p in (out / "test").iterdir()) == ["sprite00002.npz",
                                                                "sprite00002.png"]
    for split, names in (("train", meta["train"]), ("test", meta["test"])):
        for name in names:
            path = out / split / f"{name}.png"
            frames = _read_strip(path, 6)
            video = generate_sprite_video(7, int(name[-5:]), 6, SIZE)
            np.testing.assert_array_equal(frames, video.frames)  # lossless
            gt = load_ground_truth(path)
            np.testing.assert_array_equal(gt.keypoints, video.keypoints)
            np.testing.assert_array_equal(gt.visibility, video.visibility)
            assert gt.flow is None
    with pytest.raises(DataError, match="already holds a dataset"):
        make_dataset("sprites", out, videos=2, frames=2, size=SIZE)


def test_first_videos_identical_when_generating_more(tmp_path: Path) -> None:
    small = make_dataset("sprites", tmp_path / "a", videos=3, frames=4, size=SIZE, workers=1)
    large = make_dataset("sprites", tmp_path / "b", videos=7, frames=4, size=SIZE, workers=2)
    assert set(small.train) <= set(large.train) and set(small.test) <= set(large.test)
    for split, names in (("train", small.train), ("test", small.test)):
        for name in names:
            for ext in (".png", ".npz"):  # byte-identical files, even across worker counts
                a = (tmp_path / "a" / split / f"{name}{ext}").read_bytes()
                b = (tmp_path / "b" / split / f"{name}{ext}").read_bytes()
                assert a == b


def test_warped_photos_mp4_and_flow_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "photos"
    make_dataset("warped-photos", out, videos=2, frames=5, size=SIZE, video_format="mp4",
                 test_fraction=0.5, workers=1)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["video_format"] == "mp4" and len(meta["joint_names"]) == 16
    path = out / "train" / f"{meta['train'][0]}.mp4"
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    video = generate_warped_video(0, int(meta["train"][0][-5:]), 5, SIZE)
    assert frames.shape == video.frames.shape
    assert np.abs(frames.astype(float) - video.frames).mean() < 6.0  # lossy, but close
    gt = load_ground_truth(path)
    assert gt.flow.dtype == np.float32 and gt.flow.shape == (5, SIZE, SIZE, 2)
    np.testing.assert_allclose(gt.flow, video.flow, atol=2e-3)  # float16 storage


def test_png_folder_format(tmp_path: Path) -> None:
    out = tmp_path / "folder"
    make_dataset("sprites", out, videos=1, frames=3, size=SIZE, video_format="png-folder",
                 test_fraction=0.0, workers=1)
    folder = out / "train" / "sprite00000"
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == ["000000.png", "000001.png", "000002.png"]
    import imageio.v3 as iio

    video = generate_sprite_video(0, 0, 3, SIZE)
    for t, f in enumerate(files):
        np.testing.assert_array_equal(iio.imread(f), video.frames[t])
    assert load_ground_truth(folder).keypoints.shape == (3, len(JOINT_NAMES), 2)


def test_cli_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fomm.cli import main

    assert main(["make-dataset", "warped-photos", "--out", str(tmp_path / "d"), "--videos", "2",
                 "--frames", "3", "--size", "32", "--seed", "1", "--quiet", "--workers", "1"]) == 0
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert meta["videos"] == 2 and meta["video_format"] == "png-strip"
    printed = capsys.readouterr().out
    assert "warped-photos" in printed and str(tmp_path / "d") in printed


def test_make_dataset_command(tmp_path, capsys):
    from fomm.cli import main

    out = tmp_path / "ds"
    args = ["make-dataset", "sprites", "--out", str(out), "--videos", "5", "--frames", "4", "--size", "32",
            "--workers", "1"]
    assert main(args) == 0
    assert (out / "meta.json").is_file() and len(list((out / "train").glob("*.png"))) == 4
    assert main(args) == 2  # exists: a one-line error, the dataset is left alone
    assert "already holds a dataset" in capsys.readouterr().err
