"""Cross-identity pairs with exact ground truth (issue 23): one video's figure moved by another's
motion, written beside the test split by `fomm make-dataset --cross-pairs N`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fomm.cli import main
from fomm.data.synthetic import (
    cross_truth,
    generate_sprite_video,
    generate_warped_video,
    list_cross_pairs,
    load_cross_truth,
    make_dataset,
)
from fomm.data.synthetic.cross_pairs import choose_pairs
from fomm.data.synthetic.sprites import render_sprite_video, sample_sprite
from fomm.data.synthetic.warped_photos import bilinear_sample, sample_warped_scene
from fomm.data.video import read_video
from fomm.errors import DataError, OutputPathError
from fomm.geometry import to_pixels

SIZE = 48
FRAMES = 12


def test_a_sprite_is_rendered_from_its_figure_and_motion_byte_for_byte():
    figure, motion = sample_sprite(5, 3)
    video = render_sprite_video(figure, motion, FRAMES, SIZE, "x", return_labels=True)
    generated = generate_sprite_video(5, 3, FRAMES, SIZE, return_labels=True)
    assert video.frames.tobytes() == generated.frames.tobytes()
    assert video.labels.tobytes() == generated.labels.tobytes()


def test_transferred_motion_starts_at_the_source_pose_and_moves_as_the_driving_one():
    _, own = sample_sprite(1, 0)
    _, driving = sample_sprite(1, 1)
    moved = driving.transferred_to(own)
    t = np.arange(FRAMES, dtype=np.float64)
    for transferred, start, source in ((moved.global_, own.global_, driving.global_),
                                       (moved.angles, own.angles, driving.angles)):
        values = transferred(t)
        assert np.array_equal(values[0], start(0.0))  # exactly the source's first pose
        np.testing.assert_allclose(values - values[0], source(t) - source(0.0), atol=1e-12)


@pytest.mark.parametrize("kind", ["sprites", "warped-photos"])
def test_the_truth_begins_with_the_source_frame_and_a_video_driven_by_itself_is_itself(kind):
    generate = generate_sprite_video if kind == "sprites" else generate_warped_video
    source, driving = generate(2, 0, FRAMES, SIZE), generate(2, 1, FRAMES, SIZE)
    truth = cross_truth(kind, 2, 0, 1, FRAMES, SIZE)
    assert truth.frames.shape == source.frames.shape and truth.name == f"{source.name}-by-{driving.name}"
    assert truth.frames[0].tobytes() == source.frames[0].tobytes()
    assert not np.array_equal(truth.frames[-1], source.frames[-1])  # a different motion
    assert not np.array_equal(truth.frames[-1], driving.frames[-1])  # and a different figure
    itself = cross_truth(kind, 2, 0, 0, FRAMES, SIZE)
    # start + (m(t) - m(0)) is m(t) up to float rounding, which may move an edge pixel by one level.
    assert np.abs(itself.frames.astype(int) - source.frames).max() <= 1
    np.testing.assert_allclose(itself.keypoints, source.keypoints, atol=1e-6)
    assert not itself.moving[0].any()


def test_warped_truth_is_the_source_photo_under_the_driving_warps():
    truth = cross_truth("warped-photos", 4, 2, 0, FRAMES, SIZE)
    appearance, motion = sample_warped_scene(4, 2, FRAMES, SIZE), sample_warped_scene(4, 0, FRAMES, SIZE)
    assert np.array_equal(truth.defined, (np.abs(motion.flow) <= 1).all(-1))
    # The truth's keypoints are the source's frame-0 points carried by the driving warp: the
    # driving flow sampled at them gives those points back.
    pixels = to_pixels(truth.keypoints.astype(np.float64), SIZE, SIZE)
    for t in (3, FRAMES - 1):
        back = bilinear_sample(motion.flow[t].astype(np.float32), pixels[t, :, 0], pixels[t, :, 1])
        inside = truth.visibility[t]
        np.testing.assert_allclose(back[inside], appearance.points[inside], atol=0.01)
    # Where the truth is defined and the warp moved nothing, the frame is the source's frame 0.
    assert truth.defined.mean() > 0.5 and truth.moving[1:].mean() > 0.3


def test_sprite_pixels_outside_the_moving_mask_keep_their_frame_0_content():
    truth = cross_truth("sprites", 0, 3, 1, FRAMES, SIZE)
    assert truth.defined.all() and not truth.moving[0].any()
    change = np.abs(truth.frames.astype(float) - truth.frames[:1]).max(-1) / 255  # (T, H, W)
    moving = truth.moving[1:]
    assert 0.02 < moving.mean() < 0.6
    # Still pixels: background and unmoved figure; only anti-aliased edges may change a little.
    assert np.quantile(change[1:][~moving], 0.99) < 0.05
    assert np.median(change[1:][moving]) > 5 * np.median(change[1:][~moving]) + 0.01


def test_pairs_are_chosen_among_the_given_videos_from_the_seed_alone():
    first = choose_pairs("sprites", 7, [1, 4, 9], 5)
    assert first == choose_pairs("sprites", 7, [1, 4, 9], 5)
    assert len(set(first)) == 5 and all(a != b and {a, b} <= {1, 4, 9} for a, b in first)
    assert first != choose_pairs("sprites", 8, [1, 4, 9], 5)
    with pytest.raises(ValueError, match="6 ordered pairs"):
        choose_pairs("sprites", 7, [1, 4, 9], 7)


def test_make_dataset_writes_cross_pairs_beside_the_test_split(tmp_path: Path):
    summary = make_dataset("sprites", tmp_path / "a", videos=6, frames=FRAMES, size=SIZE, seed=3,
                           test_fraction=0.5, workers=1, cross_pairs=3)
    assert summary.cross_pairs == 3 and "3 cross-identity pairs" in summary.describe()
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["cross_pairs"] == 3 and "relative" in meta["cross_pairs_truth"]
    pairs = list_cross_pairs(tmp_path / "a")
    assert len(pairs) == 3
    for pair in pairs:
        assert pair.source.parent.name == "test" and pair.driving.parent.name == "test"
        assert pair.source.stem in meta["test"] and pair.driving.stem in meta["test"]
        truth = cross_truth("sprites", 3, int(pair.source.stem[-5:]), int(pair.driving.stem[-5:]), FRAMES, SIZE)
        assert np.array_equal(read_video(pair.truth), truth.frames)  # lossless strip
        arrays = load_cross_truth(pair.arrays)
        assert np.array_equal(arrays.moving, truth.moving) and np.array_equal(arrays.keypoints, truth.keypoints)
        assert arrays.defined.all()
    # The same seed writes the same files.
    make_dataset("sprites", tmp_path / "b", videos=6, frames=FRAMES, size=SIZE, seed=3, test_fraction=0.5,
                 workers=1, cross_pairs=3)
    for pair in pairs:
        for path in (pair.truth, pair.arrays):
            assert path.read_bytes() == (tmp_path / "b" / "cross" / path.name).read_bytes()


def test_a_dataset_without_pairs_says_how_to_make_them(tmp_path: Path):
    make_dataset("sprites", tmp_path / "d", videos=2, frames=3, size=32, workers=1)
    with pytest.raises(DataError, match="--cross-pairs N"):
        list_cross_pairs(tmp_path / "d")


@pytest.mark.parametrize("options, message", [
    (dict(frames=1), "frames >= 2"),
    (dict(workers=0), "workers must be at least 1"),
    (dict(fps=0), "fps must be between 1 and 240"),
    (dict(fps=100000), "fps must be between 1 and 240"),
    (dict(fps=-1), "fps must be between 1 and 240"),
    (dict(cross_pairs=-1), "must not be negative"),
    (dict(cross_pairs=3), "2 videos give only 2 ordered pairs of different videos in the test split"),
    (dict(train_cross_pairs=-2), "must not be negative, got -2"),
    (dict(train_cross_pairs=3), "2 videos give only 2 ordered pairs of different videos in the training split"),
])
def test_make_dataset_refuses_settings_it_cannot_honour(tmp_path: Path, options, message):
    settings = dict(videos=4, frames=3, size=32, test_fraction=0.5, workers=1) | options
    with pytest.raises(DataError, match=message):
        make_dataset("sprites", tmp_path / "d", **settings)
    assert not (tmp_path / "d").exists()  # refused before anything was written


def test_make_dataset_refuses_an_output_that_is_a_file(tmp_path: Path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("mine")
    with pytest.raises(OutputPathError, match="is not a folder"):
        make_dataset("sprites", target, videos=2, frames=3, size=32, workers=1)
    code = main(["make-dataset", "sprites", "--out", str(target / "sub"), "--videos", "2", "--frames", "3",
                 "--size", "32", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot create" in err
    assert target.read_text() == "mine"


@pytest.mark.parametrize("flags, message", [
    (["--frames", "1"], "frames >= 2"),
    (["--workers", "0"], "workers must be at least 1"),
    (["--fps", "0"], "fps must be between"),
    (["--fps", "100000"], "fps must be between"),
    (["--fps", "-1"], "fps must be between"),
])
def test_make_dataset_command_refuses_with_one_line(tmp_path: Path, capsys, flags, message):
    code = main(["make-dataset", "sprites", "--out", str(tmp_path / "d"), "--videos", "2", "--frames", "3",
                 "--size", "32", "--quiet", *flags])
    captured = capsys.readouterr()
    assert code == 2 and message in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and captured.out == ""


def test_make_dataset_command_writes_cross_pairs(tmp_path: Path, capsys):
    code = main(["make-dataset", "warped-photos", "--out", str(tmp_path / "d"), "--videos", "4", "--frames", "4",
                 "--size", "32", "--test-fraction", "0.5", "--cross-pairs", "2", "--workers", "1", "--quiet"])
    assert code == 0 and "2 cross-identity pairs" in capsys.readouterr().out
    assert len(list_cross_pairs(tmp_path / "d")) == 2
