"""Datasets over real video folders written into tmp_path."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fomm.config import DatasetParams
from fomm.data import (
    BadDataWarning,
    DataError,
    DatasetRepeater,
    FrameCache,
    FramesDataset,
    PairedDataset,
    VideoReadError,
    split_train_test,
    write_video,
)

from .test_video_io import frame_index, indexed_frames, smooth_frames

SIZE = 32
STEP = 24  # gray level per frame index in indexed_frames


def write_videos(folder: Path, names: list[str], num_frames: int = 8) -> list[Path]:
    """Small mp4 videos whose frame t is flat gray at level 10 + 24 t."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = indexed_frames(num_frames, SIZE, STEP)
    return [write_video(folder / name, frames, fps=25) for name in names]


def dataset_params(root: Path, **overrides) -> DatasetParams:
    return DatasetParams(root_dir=str(root), frame_shape=(SIZE, SIZE, 3), **overrides)


# ----------------------------------------------------------------------------------------
# layouts and samples


def test_train_and_test_folders(tmp_path: Path) -> None:
    write_videos(tmp_path / "train", ["a.mp4", "b.mp4", "c.mp4"])
    write_videos(tmp_path / "test", ["d.mp4"])
    train = FramesDataset(dataset_params(tmp_path), is_train=True)
    test = FramesDataset(dataset_params(tmp_path), is_train=False)
    assert train.videos == ["a.mp4", "b.mp4", "c.mp4"] and test.videos == ["d.mp4"]
    train.reseed(0)
    for index in range(len(train)):
        sample = train[index]
        assert set(sample) == {"source", "driving", "name", "nearby"}
        for key in ("source", "driving"):
            assert sample[key].shape == (3, SIZE, SIZE) and sample[key].dtype == torch.float32
            assert 0.0 <= sample[key].min() and sample[key].max() <= 1.0
        source, driving = frame_index(sample["source"], STEP), frame_index(sample["driving"], STEP)
        assert source < driving  # distinct frames, earlier one as source (as the original)
        assert sample["name"] == train.videos[index] and sample["nearby"] is False
    video = test[0]
    assert video["video"].shape == (3, 8, SIZE, SIZE) and video["name"] == "d.mp4"
    assert [frame_index(video["video"][:, t], STEP) for t in range(8)] == list(range(8))


def test_mixed_formats_and_resize(tmp_path: Path) -> None:
    root = tmp_path / "train"
    root.mkdir()
    frames = smooth_frames(6, 48, 40)
    write_video(root / "clip.mp4", frames, fps=25)
    write_video(root / "clip.gif", frames, fps=25)
    (root / "folder").mkdir()
    for index, frame in enumerate(frames):
        iio.imwrite(root / "folder" / f"{index}.png", frame)
    square = smooth_frames(6, 24, 24)
    iio.imwrite(root / "strip.png", np.concatenate(list(square), axis=1))
    (tmp_path / "test").mkdir()
    write_videos(tmp_path / "test", ["t.mp4"])
    dataset = FramesDataset(dataset_params(tmp_path), is_train=True)
    assert sorted(dataset.videos) == ["clip.gif", "clip.mp4", "folder", "strip.png"]
    for index in range(len(dataset)):
        assert dataset[index]["source"].shape == (3, SIZE, SIZE)


def test_seeded_split_is_deterministic_and_disjoint(tmp_path: Path) -> None:
    names = [f"v{index:02d}.mp4" for index in range(10)]
    write_videos(tmp_path, names, num_frames=3)
    params = dataset_params(tmp_path, random_seed=5, test_fraction=0.3)
    train = FramesDataset(params, is_train=True)
    test = FramesDataset(params, is_train=False)
    assert len(test) == 3 and len(train) == 7
    assert sorted(train.videos + test.videos) == names
    assert FramesDataset(params, is_train=False).videos == test.videos
    splits = {tuple(split_train_test(names, 0.3, seed)[1]) for seed in range(6)}
    assert len(splits) > 1  # the seed matters
    assert split_train_test(["only.mp4"], 0.2, 0) == (["only.mp4"], [])


def test_id_sampling(tmp_path: Path) -> None:
    names = [f"{person}#clip{clip}.mp4" for person in ("ann", "bob", "cid", "dan", "eve") for clip in range(3)]
    write_videos(tmp_path / "train", names, num_frames=3)
    write_videos(tmp_path / "test", ["fay#clip0.mp4", "fay#clip1.mp4"], num_frames=3)
    train = FramesDataset(dataset_params(tmp_path, id_sampling=True), is_train=True)
    assert train.videos == ["ann", "bob", "cid", "dan", "eve"]  # an epoch visits every id once
    train.reseed(0)
    seen = set()
    for _ in range(10):
        for index, person in enumerate(train.videos):
            name = train[index]["name"]
            assert name.startswith(person + "#")
            seen.add(name)
    assert len(seen) > 5  # different clips of an id get picked
    test = FramesDataset(dataset_params(tmp_path, id_sampling=True), is_train=False)
    assert test.videos == ["fay#clip0.mp4", "fay#clip1.mp4"]  # tests iterate over videos


def test_id_sampling_split_keeps_ids_together(tmp_path: Path) -> None:
    names = [f"id{person}#c{clip}.mp4" for person in range(6) for clip in range(2)]
    write_videos(tmp_path, names, num_frames=2)
    params = dataset_params(tmp_path, id_sampling=True, test_fraction=0.34)
    train = FramesDataset(params, is_train=True)
    test = FramesDataset(params, is_train=False)
    test_ids = {name.split("#")[0] for name in test.videos}
    assert len(test_ids) == 2 and len(test.videos) == 4
    assert not test_ids & set(train.videos)


@pytest.mark.parametrize("cache", [False, True])
def test_nearby_pairs(tmp_path: Path, cache: bool) -> None:
    write_videos(tmp_path / "train", ["a.mp4"], num_frames=10)
    (tmp_path / "test").mkdir()
    params = dataset_params(tmp_path, nearby_pair_ratio=1.0, nearby_pair_max_gap=2, cache_frames=cache)
    dataset = FramesDataset(params, is_train=True)
    dataset.reseed(1)
    gaps = set()
    for _ in range(30):
        sample = dataset[0]
        gap = frame_index(sample["driving"], STEP) - frame_index(sample["source"], STEP)
        assert sample["nearby"] is True and 1 <= abs(gap) <= 2
        gaps.add(gap)
    assert gaps == {-2, -1, 1, 2}
    half = FramesDataset(dataset_params(tmp_path, nearby_pair_ratio=0.5), is_train=True)
    half.reseed(0)
    flags = [half[0]["nearby"] for _ in range(40)]
    assert 5 < sum(flags) < 35


def test_augmentation_on_by_default_in_training_only(tmp_path: Path) -> None:
    write_videos(tmp_path / "train", ["a.mp4"])
    write_videos(tmp_path / "test", ["b.mp4"])
    params = dataset_params(tmp_path, augmentation_params={"resize_param": {"ratio": [0.5, 0.5]}})
    train = FramesDataset(params, is_train=True)
    assert train.augmentation is not None
    sample = train[0]
    assert sample["source"][:, 0, 0].max() == 0.0  # shrunk and padded with black
    assert sample["source"].shape == (3, SIZE, SIZE)
    assert FramesDataset(params, is_train=False).augmentation is None
    assert FramesDataset(params, is_train=True, augment=False).augmentation is None


# ----------------------------------------------------------------------------------------
# wrappers


def test_repeater(tmp_path: Path) -> None:
    write_videos(tmp_path / "train", ["a.mp4", "b.mp4"], num_frames=3)
    (tmp_path / "test").mkdir()
    repeated = DatasetRepeater(FramesDataset(dataset_params(tmp_path), is_train=True), num_repeats=3)
    assert len(repeated) == 6
    assert [repeated[index]["name"] for index in range(6)] == ["a.mp4", "b.mp4"] * 3


def test_pairs_list_csv(tmp_path: Path) -> None:
    write_videos(tmp_path / "train", ["x.mp4"], num_frames=2)
    write_videos(tmp_path / "test", ["a.mp4", "b.mp4", "c.mp4"], num_frames=2)
    (tmp_path / "pairs.csv").write_text("distance,source,driving,frame\n0,a.mp4,b.mp4,0\n0,c,a,0\n0,b.mp4,c.mp4,0\n")
    params = dataset_params(tmp_path, pairs_list="pairs.csv")  # relative to root_dir
    paired = PairedDataset(FramesDataset(params, is_train=False), number_of_pairs=10)
    assert len(paired) == 3
    first = paired[0]
    assert (first["source_name"], first["driving_name"]) == ("a.mp4", "b.mp4")
    assert first["source_video"].shape == (3, 2, SIZE, SIZE)
    assert (paired[1]["source_name"], paired[1]["driving_name"]) == ("c.mp4", "a.mp4")
    assert len(PairedDataset(FramesDataset(params, is_train=False), number_of_pairs=2)) == 2

    # A row naming a video the split does not have is an error naming the row, not a pair left out.
    (tmp_path / "missing.csv").write_text("source,driving\na.mp4,b.mp4\nzzz.mp4,a.mp4\n")
    with pytest.raises(DataError, match=r"missing.csv line 3: no video 'zzz.mp4' in the dataset's test videos"):
        PairedDataset(FramesDataset(dataset_params(tmp_path, pairs_list=str(tmp_path / "missing.csv")), False), 5)
    (tmp_path / "empty.csv").write_text("source,driving\n")
    with pytest.raises(DataError, match="empty.csv: pairs_list has no rows"):
        PairedDataset(FramesDataset(dataset_params(tmp_path, pairs_list=str(tmp_path / "empty.csv")), False), 5)
    (tmp_path / "bad.csv").write_text("src,drv\na.mp4,b.mp4\n")
    with pytest.raises(DataError, match="bad.csv"):
        PairedDataset(FramesDataset(dataset_params(tmp_path, pairs_list=str(tmp_path / "bad.csv")), False), 5)
    with pytest.raises(DataError, match="nothere.csv"):
        PairedDataset(FramesDataset(dataset_params(tmp_path, pairs_list="nothere.csv"), False), 5)


def test_random_pairs(tmp_path: Path) -> None:
    write_videos(tmp_path / "train", ["x.mp4"], num_frames=2)
    write_videos(tmp_path / "test", [f"{index}.mp4" for index in range(4)], num_frames=2)
    dataset = FramesDataset(dataset_params(tmp_path), is_train=False)
    paired = PairedDataset(dataset, number_of_pairs=10, seed=1)
    assert len(paired) == 10 and len(set(paired.pairs)) == 10
    assert all(max(pair) < 4 for pair in paired.pairs)
    assert PairedDataset(dataset, number_of_pairs=10, seed=1).pairs == paired.pairs
    assert len(PairedDataset(dataset, number_of_pairs=3).pairs) == 3  # among the first 3 videos


# ----------------------------------------------------------------------------------------
# cache and reproducibility


def test_frame_cache_is_bounded_lru() -> None:
    cache = FrameCache(max_bytes=300)
    blocks = {key: np.zeros(100, np.uint8) for key in "abcd"}
    for key in "abc":
        cache.put(key, blocks[key])
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("d", blocks["d"])  # evicts b, the least recently used
    assert cache.get("b") is None and cache.get("c") is not None and cache.get("d") is not None
    assert cache.nbytes <= 300 and len(cache) == 3
    cache.put("huge", np.zeros(1000, np.uint8))
    assert cache.get("huge") is None


def test_cache_frames(tmp_path: Path) -> None:
    write_videos(tmp_path / "train", ["a.mp4", "b.mp4"])
    (tmp_path / "test").mkdir()
    dataset = FramesDataset(dataset_params(tmp_path, cache_frames=True), is_train=True)
    dataset.reseed(0)
    for _ in range(3):
        for index in range(2):
            sample = dataset[index]
            assert frame_index(sample["source"], STEP) < frame_index(sample["driving"], STEP)
    assert len(dataset.cache) == 2 and dataset.cache.misses == 2 and dataset.cache.hits == 4


def _epoch(dataset: FramesDataset, workers: int, seed: int) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    # Workers are started fresh (spawn), not forked: forking a process that runs many native
    # threads (FFmpeg, oneDNN, runtimes) can crash.
    context = "spawn" if workers else None
    loader = DataLoader(dataset, batch_size=2, shuffle=True, num_workers=workers, multiprocessing_context=context)
    return [torch.cat([batch["source"], batch["driving"]]) for batch in loader]


def check_loader_reproducibility(root: Path) -> None:
    """Same seed, same batches; another seed, other batches; with 0 and with 2 workers."""
    params = dataset_params(root, augmentation_params={"flip_param": {"horizontal_flip": True}})
    dataset = FramesDataset(params, is_train=True)
    for workers in (0, 2):
        first = _epoch(dataset, workers, seed=0)
        second = _epoch(dataset, workers, seed=0)
        assert all(torch.equal(a, b) for a, b in zip(first, second)), f"{workers} workers: seed 0 twice differs"
        other = _epoch(dataset, workers, seed=1)
        assert not all(torch.equal(a, b) for a, b in zip(first, other)), f"{workers} workers: seeds 0 and 1 agree"


def test_dataloader_reproducible_with_workers(tmp_path: Path) -> None:
    """Run in a process of its own: starting DataLoader workers installs a process-wide SIGCHLD
    handler, and the pytest process, long-lived and many-threaded, crashed (SIGSEGV) in a later
    test or in this one's teardown in CI runs on AMX machines, even with the handler reset after
    each test (see conftest.default_sigchld). A fresh interpreter that exits when done has neither."""
    write_videos(tmp_path / "train", [f"{index}.mp4" for index in range(4)], num_frames=8)
    (tmp_path / "test").mkdir()
    code = ("import sys; from pathlib import Path; from tests.test_datasets import check_loader_reproducibility; "
            "check_loader_reproducibility(Path(sys.argv[1]))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=Path(__file__).resolve().parents[1],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


# ----------------------------------------------------------------------------------------
# bad data


def _bad_dataset(tmp_path: Path) -> Path:
    train = tmp_path / "train"
    write_videos(train, ["good1.mp4", "good2.mp4"])
    (train / "corrupt.mp4").write_bytes(b"\x00\x01not a video at all" * 20)
    (train / "empty.mp4").write_bytes(b"")
    iio.imwrite(train / "single.png", np.zeros((16, 16, 3), np.uint8))  # a one-frame strip
    (train / "frames_dir").mkdir()  # a frame folder without frames
    (train / "notes.csv").write_text("not a video, ignored")
    (tmp_path / "test").mkdir()
    return tmp_path


@pytest.mark.parametrize("bad", ["corrupt.mp4", "empty.mp4", "single.png", "frames_dir"])
def test_bad_file_raises_naming_it(tmp_path: Path, bad: str) -> None:
    root = tmp_path / "root"
    write_videos(root / "train", ["good.mp4"])
    (root / "test").mkdir()
    source = _bad_dataset(tmp_path / "all") / "train" / bad
    source.rename(root / "train" / bad)
    with pytest.raises(VideoReadError, match=bad) as caught:
        FramesDataset(dataset_params(root), is_train=True)
    assert str(root / "train" / bad) in str(caught.value)


def test_skip_bad_counts_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _bad_dataset(tmp_path)
    with caplog.at_level(logging.WARNING, logger="fomm.data.datasets"):
        with pytest.warns(BadDataWarning) as record:
            dataset = FramesDataset(dataset_params(root), is_train=True, skip_bad=True)
    assert dataset.videos == ["good1.mp4", "good2.mp4"]
    skipped = sorted(Path(item.path).name for item in dataset.skipped)
    assert skipped == ["corrupt.mp4", "empty.mp4", "frames_dir", "single.png"]
    assert len(record) == 4
    summary = [line for line in caplog.messages if "skipped 4 of 6 videos" in line]
    assert len(summary) == 1
    assert dataset[0]["source"].shape == (3, SIZE, SIZE)


def test_skip_bad_at_read_time(tmp_path: Path) -> None:
    train = tmp_path / "train"
    write_videos(train, ["good.mp4"])
    (tmp_path / "test").mkdir()
    # Header at the front, frame data cut: passes the header check, fails when decoded.
    import av

    cut = train / "cut.mp4"
    with av.open(str(cut), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        noise = (np.random.default_rng(0).random((16, SIZE, SIZE, 3)) * 255).astype(np.uint8)
        for frame in noise:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    strict = FramesDataset(dataset_params(tmp_path, cache_frames=True), is_train=True)
    with pytest.raises(VideoReadError, match="cut.mp4"):
        strict[strict.videos.index("cut.mp4")]
    lenient = FramesDataset(dataset_params(tmp_path, cache_frames=True), is_train=True, skip_bad=True)
    with pytest.warns(BadDataWarning, match="cut.mp4"):
        sample = lenient[lenient.videos.index("cut.mp4")]
    assert sample["name"] == "good.mp4"
    assert [Path(item.path).name for item in lenient.skipped] == ["cut.mp4"]


def test_empty_and_missing_datasets(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        FramesDataset(dataset_params(tmp_path / "nowhere"), is_train=True)
    (tmp_path / "empty" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "test").mkdir()
    with pytest.raises(DataError, match="no usable videos"):
        FramesDataset(dataset_params(tmp_path / "empty"), is_train=True)
    only_bad = tmp_path / "bad" / "train"
    only_bad.mkdir(parents=True)
    (only_bad / "x.mp4").write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadDataWarning)
        with pytest.raises(DataError, match="1 skipped"):
            FramesDataset(dataset_params(tmp_path / "bad"), is_train=True, skip_bad=True)
    (tmp_path / "notest" / "train").mkdir(parents=True)
    write_videos(tmp_path / "notest" / "train", ["a.mp4"])
    with pytest.raises(DataError, match="test"):
        FramesDataset(dataset_params(tmp_path / "notest"), is_train=False)
