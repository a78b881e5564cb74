"""Datasets of videos in the original FOMM layouts.

``root_dir`` holds videos (files of any format :mod:`fomm.data.video` reads, or folders of
frames), either in ``train/`` and ``test/`` subfolders or all together, in which case a seeded
split (``random_seed``, ``test_fraction``) decides. With ``id_sampling`` videos are named
``id#clip...``; a training epoch then visits every identity once and takes a random clip of it,
and the split keeps all clips of one identity on the same side (the original split videos, which
can leak an identity into both sides).

Samples (tensors are float32 in [0, 1]):

* training: ``{'source': (3, H, W), 'driving': (3, H, W), 'name': str, 'nearby': bool}`` (plus
  ``'flow': (2, H, W)`` with ``compute_flow``), two
  distinct frames of one video (source first in time unless nearby, as the original sorted them);
  with ``cross_pair_ratio`` > 0 every sample also has ``'initial'`` and ``'target'`` ``(3, H, W)``,
  and that share of them are cross-identity pairs (``cross-train/`` of a synthetic dataset): the
  source is figure A's first frame, the driving frame is figure B's frame t, the initial frame B's
  first frame and the target the ground truth of A moved by B at t. Other samples are the
  special case ``initial = source``, ``target = driving``, so one relative-motion objective
  trains on both (see :class:`fomm.models.fomm.objective.GeneratorFullModel`);
* test: ``{'video': (3, T, H, W), 'name': str}``, the whole video.

Randomness (frame choice, clip choice, augmentation) comes from a ``numpy.random.Generator``
seeded per sample from torch's generator of the process (a DataLoader worker's is seeded by
torch from the epoch's base seed and the worker id), so a fixed ``torch.manual_seed`` makes
loading reproducible with or without workers.
"""

from __future__ import annotations

import csv
import logging
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from ..config import DatasetParams
from ..errors import BadDataWarning, DataError, VideoReadError
from .augmentation import Augmentation
from .synthetic.writer import TRAIN_CROSS_FOLDER, CrossPairFiles, list_cross_pairs
from .video import is_video_path, read_frames_at, read_video, video_info

__all__ = [
    "dataset_folder",
    "FramesDataset",
    "DatasetRepeater",
    "PairedDataset",
    "FrameCache",
    "SkippedVideo",
    "list_videos",
    "split_train_test",
    "video_id",
]

logger = logging.getLogger(__name__)

MIN_FRAMES = 2  # a training pair needs two distinct frames


@dataclass(frozen=True)
class SkippedVideo:
    """A video left out because it could not be used, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class _Video:
    path: Path
    num_frames: int  # from the header; decoding may still find fewer in a damaged file

    @property
    def name(self) -> str:
        return self.path.name


# ------------------------------------------------------------------------------------------
# listing and splitting


def video_id(name: str) -> str:
    """Identity of a video named ``id#clip...`` (the original's convention); a name without
    ``#`` is its own identity (without extension)."""
    return name.split("#", 1)[0] if "#" in name else Path(name).stem


def dataset_folder(path: str | Path) -> Path:
    """``path`` as a dataset's root folder, or a :class:`DataError` saying it is not there."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    return root


def list_videos(folder: Path) -> list[Path]:
    """Videos directly inside ``folder`` (files of a known format and frame folders), by name.

    Hidden entries and files of other types (a pairs CSV, notes) are ignored.
    """
    folder = Path(folder)
    try:
        entries = sorted(folder.iterdir(), key=lambda entry: entry.name)
    except FileNotFoundError:
        raise DataError(f"{folder}: dataset folder not found") from None
    except OSError as error:
        raise DataError(f"{folder}: cannot list the dataset folder: {error.strerror or error}") from None
    videos = [entry for entry in entries if not entry.name.startswith(".") and is_video_path(entry)]
    ignored = len(entries) - len(videos)
    if ignored:
        logger.debug("%s: ignored %d entries that are not videos", folder, ignored)
    return videos


def split_train_test(
    names: Sequence[str], test_fraction: float, seed: int, by_id: bool = False
) -> tuple[list[str], list[str]]:
    """Seeded split of video names into (train, test), each sorted.

    The split permutes the sorted names (or identities, with ``by_id``) with
    ``numpy.random.default_rng(seed)``, so it depends only on the names and the seed. The test
    side gets ``round(test_fraction * n)`` items, at least one and at most ``n - 1`` when
    ``n >= 2`` (a single video goes to train).
    """
    keys = sorted({video_id(name) for name in names}) if by_id else sorted(set(names))
    count = len(keys)
    num_test = min(max(round(test_fraction * count), 1), count - 1) if count >= 2 else 0
    order = np.random.default_rng(seed).permutation(count)
    test_keys = {keys[position] for position in order[:num_test]}
    is_test = (lambda name: video_id(name) in test_keys) if by_id else (lambda name: name in test_keys)
    train = sorted(name for name in names if not is_test(name))
    test = sorted(name for name in names if is_test(name))
    return train, test


# ------------------------------------------------------------------------------------------
# frame cache


class FrameCache:
    """Least-recently-used cache of decoded videos, bounded in bytes (per process).

    Keys are paths, values ``(T, H, W, C)`` uint8 arrays. A video larger than the whole budget
    is not cached. ``hits`` and ``misses`` count lookups.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._items: "OrderedDict[str, np.ndarray]" = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> Optional[np.ndarray]:
        value = self._items.get(key)
        if value is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: str, value: np.ndarray) -> None:
        if value.nbytes > self.max_bytes:
            return
        if key in self._items:
            self._bytes -= self._items.pop(key).nbytes
        while self._items and self._bytes + value.nbytes > self.max_bytes:
            _, evicted = self._items.popitem(last=False)
            self._bytes -= evicted.nbytes
        self._items[key] = value
        self._bytes += value.nbytes


# ------------------------------------------------------------------------------------------
# the dataset


class FramesDataset(Dataset):
    """Videos of ``params.root_dir`` as training pairs or whole test videos (see module doc).

    Args:
        params: the ``dataset_params`` section (frame_shape, id_sampling, augmentation, ...).
        is_train: training samples (frame pairs) or test samples (whole videos).
        augment: apply ``params.augmentation_params``; None means "when training".
        skip_bad: leave out unusable videos with a :class:`BadDataWarning` (listed in
            ``self.skipped``) instead of raising :class:`VideoReadError`.
        cache_max_bytes: budget of the decoded-video cache used when ``params.cache_frames``
            (per process: each DataLoader worker has its own cache).

    Raises DataError when the folder has no usable video, VideoReadError for a bad video
    (unless ``skip_bad``). Videos are checked at construction from headers only; a video whose
    frames turn out undecodable later is skipped (``skip_bad``) when sampled, and recorded in
    ``skipped`` of the process that found it (a DataLoader worker's copy, if any).
    """

    def __init__(
        self,
        params: DatasetParams,
        is_train: bool,
        augment: Optional[bool] = None,
        skip_bad: bool = False,
        cache_max_bytes: int = 512 * 2**20,
    ) -> None:
        self.params = params
        self.is_train = is_train
        self.skip_bad = skip_bad
        self.frame_shape = tuple(params.frame_shape)
        self.root_dir = Path(params.root_dir)
        self.pairs_list = params.pairs_list
        self.skipped: list[SkippedVideo] = []
        use_augmentation = is_train if augment is None else augment
        self.augmentation: Optional[Augmentation] = (
            Augmentation(params.augmentation_params, self.frame_shape)
            if use_augmentation and params.augmentation_params is not None
            else None
        )
        self.cache: Optional[FrameCache] = FrameCache(cache_max_bytes) if params.cache_frames else None
        self._bad_paths: set[Path] = set()  # found undecodable while sampling (skip_bad)
        self._flow_cache: Optional[FrameCache] = None
        self._rng_owner: Optional[tuple] = None
        self._rng_state: Optional[np.random.Generator] = None

        folder, paths = self._select_videos()
        checked = [video for video in (self._check(path) for path in paths) if video is not None]
        if self.skipped:
            logger.warning(
                "%s: skipped %d of %d videos that cannot be used (see dataset.skipped; first: %s)",
                folder, len(self.skipped), len(paths), self.skipped[0].reason,
            )
        if not checked:
            detail = f", {len(self.skipped)} skipped as bad" if self.skipped else ""
            raise DataError(f"{folder}: no usable videos for {'training' if is_train else 'testing'}{detail}")
        self._entries = checked
        self._cross_pairs = self._select_cross_pairs() if is_train and params.cross_pair_ratio > 0 else []
        self._by_id = is_train and params.id_sampling
        if self._by_id:
            clips: dict[str, list[_Video]] = {}
            for video in checked:
                clips.setdefault(video_id(video.name), []).append(video)
            self._clips = clips
            self.videos = sorted(clips)
        else:
            self.videos = [video.name for video in checked]

    # -- construction helpers --------------------------------------------------------------

    def _select_videos(self) -> tuple[Path, list[Path]]:
        """The folder and video paths of this side (train or test)."""
        root = dataset_folder(self.root_dir)
        if (root / "train").is_dir():
            folder = root / ("train" if self.is_train else "test")
            if not folder.is_dir():
                raise DataError(f"{folder}: test folder missing (the dataset has {root / 'train'})")
            return folder, list_videos(folder)
        paths = list_videos(root)
        train, test = split_train_test(
            [path.name for path in paths], self.params.test_fraction, self.params.random_seed,
            by_id=self.params.id_sampling,
        )
        chosen = set(train if self.is_train else test)
        return root, [path for path in paths if path.name in chosen]

    def _select_cross_pairs(self) -> list[tuple[CrossPairFiles, int]]:
        """The training cross pairs with their usable frame count (the shorter of driving and truth).
        A driving video is a training video whose header was read already; only the truth's is new."""
        pairs = list_cross_pairs(dataset_folder(self.root_dir), TRAIN_CROSS_FOLDER)
        checked = {video.path: video.num_frames for video in self._entries}

        def frame_count(path: Path) -> int:
            return checked[path] if path in checked else video_info(path).num_frames

        counted = [(pair, min(frame_count(pair.driving), frame_count(pair.truth))) for pair in pairs]
        too_short = [pair.name for pair, frames in counted if frames < MIN_FRAMES]
        if too_short:
            raise DataError(f"cross pair {too_short[0]}: fewer than {MIN_FRAMES} frames")
        return counted

    def _check(self, path: Path) -> Optional[_Video]:
        """Header check: readable, with at least MIN_FRAMES frames. None when skipped."""
        try:
            info = video_info(path)
            if info.num_frames < MIN_FRAMES:
                raise VideoReadError(f"{path}: video has {info.num_frames} frame(s), at least {MIN_FRAMES} needed")
        except VideoReadError as error:
            if not self.skip_bad:
                raise
            self._skip(path, str(error))
            return None
        return _Video(path, info.num_frames)

    def _skip(self, path: Path, reason: str) -> None:
        if any(item.path == str(path) for item in self.skipped):
            return
        warnings.warn(f"skipping bad video: {reason}", BadDataWarning, stacklevel=3)
        self.skipped.append(SkippedVideo(str(path), reason))

    # -- randomness --------------------------------------------------------------------------

    def reseed(self, seed: int) -> None:
        """Draw this process's samples from one generator seeded with ``seed`` (tests, debugging).

        Copies of the dataset in DataLoader workers do not inherit it (they are other
        processes) and go back to torch-derived seeds.
        """
        self._rng_owner = self._rng_key()
        self._rng_state = np.random.default_rng(seed)

    @staticmethod
    def _rng_key() -> tuple:
        info = get_worker_info()
        return (os.getpid(), None if info is None else info.id)

    def _rng(self) -> np.random.Generator:
        """The generator of one sample.

        Seeded from torch's generator of this process: in a DataLoader worker torch seeds it
        with base seed + worker id (the base drawn anew each epoch from the main process's
        torch generator), in the main process it is the global one. So ``torch.manual_seed``
        fixes every draw with or without workers, and epochs differ from each other.
        """
        if self._rng_state is not None and self._rng_owner == self._rng_key():
            return self._rng_state
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))

    # -- sampling ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict:
        rng = self._rng()
        while True:
            video = self._video_for(index, rng)
            try:
                return self._train_sample(video, rng) if self.is_train else self._test_sample(video, rng)
            except VideoReadError as error:
                # The header looked fine but the frames do not decode (a damaged file).
                if not self.skip_bad:
                    raise
                self._skip(video.path, str(error))
                self._bad_paths.add(video.path)
                index = self._replacement_index(rng)

    def _usable(self, videos: list[_Video]) -> list[_Video]:
        return [video for video in videos if video.path not in self._bad_paths]

    def _replacement_index(self, rng: np.random.Generator) -> int:
        """A random index that still has a video not found bad while reading."""
        if self._by_id:
            candidates = [i for i, name in enumerate(self.videos) if self._usable(self._clips[name])]
        else:
            candidates = [i for i, video in enumerate(self._entries) if video.path not in self._bad_paths]
        if not candidates:
            raise DataError(f"{self.root_dir}: every video failed to decode (see dataset.skipped)")
        return candidates[int(rng.integers(len(candidates)))]

    def _video_for(self, index: int, rng: np.random.Generator) -> _Video:
        if self._by_id:
            clips = self._usable(self._clips[self.videos[index]]) or self._clips[self.videos[index]]
            return clips[int(rng.integers(len(clips)))]
        return self._entries[index]

    def pick_frames(self, num_frames: int, rng: np.random.Generator) -> tuple[int, int, bool]:
        """(source index, driving index, nearby) for a video of ``num_frames`` >= 2 frames.

        With probability ``nearby_pair_ratio`` the driving frame lies within
        ``nearby_pair_max_gap`` frames of the source; otherwise two distinct frames are drawn
        uniformly and the earlier is the source.
        """
        ratio = self.params.nearby_pair_ratio
        if ratio > 0 and rng.random() < ratio:
            gap = self.params.nearby_pair_max_gap
            source = int(rng.integers(num_frames))
            candidates = [i for i in range(max(0, source - gap), min(num_frames, source + gap + 1)) if i != source]
            return source, int(rng.choice(candidates)), True
        first, second = np.sort(rng.choice(num_frames, size=2, replace=False))
        return int(first), int(second), False

    def _train_sample(self, video: _Video, rng: np.random.Generator) -> dict:
        if self._cross_pairs and rng.random() < self.params.cross_pair_ratio:
            return self._cross_sample(rng)
        if self.cache is not None:
            frames_all = self._whole_video(video)
            source, driving, nearby = self.pick_frames(len(frames_all), rng)
            frames = frames_all[[source, driving]]
        else:
            # Decode just the two frames (the reader seeks where the format allows).
            source, driving, nearby = self.pick_frames(video.num_frames, rng)
            frames = read_frames_at(video.path, [source, driving], self.frame_shape)
        pair = self._augment(frames, rng)
        sample = {
            "source": _channels_first(pair[0]),
            "driving": _channels_first(pair[1]),
            "name": video.name,
            "nearby": nearby,
        }
        if self.params.compute_flow:
            sample["flow"] = torch.from_numpy(self._flow(video, source, driving, pair, nearby))
        if self._cross_pairs:
            sample["initial"], sample["target"] = sample["source"], sample["driving"]
        return sample

    def _cross_sample(self, rng: np.random.Generator) -> dict:
        """A cross pair's sample (module docstring), not augmented: a time flip would break the
        truth, which is defined from the first frames, and the other augmentations would have to
        be drawn alike for four images of two figures."""
        pair, num_frames = self._cross_pairs[int(rng.integers(len(self._cross_pairs)))]
        t = int(rng.integers(1, num_frames))
        source = read_frames_at(pair.source, [0], self.frame_shape)[0]
        initial, driving = read_frames_at(pair.driving, [0, t], self.frame_shape)
        target = read_frames_at(pair.truth, [t], self.frame_shape)[0]
        frames = np.stack([source, driving, initial, target]).astype(np.float32) / 255.0
        sample = {key: _channels_first(frame) for key, frame in zip(("source", "driving", "initial", "target"), frames)}
        sample |= {"name": pair.name, "nearby": False}
        if self.params.compute_flow:  # only nearby frames of one video get a flow
            sample["flow"] = torch.zeros((2, *self.frame_shape[:2]))
        return sample

    def _flow(self, video: _Video, source: int, driving: int, pair: np.ndarray, nearby: bool) -> np.ndarray:
        """Forward optical flow ``(2, H, W)`` from the sample's source to its driving frame
        (normalised units, see fomm.data.flow), computed on the augmented frames. Only nearby pairs
        get one (zeros otherwise: large motions are beyond what the flow estimates reliably).
        Cached per (video, source, driving) when ``cache_flow`` and there is no augmentation,
        since augmented frames differ on every draw."""
        from .flow import dense_flow

        if not nearby:
            return np.zeros((2, *pair.shape[1:3]), dtype=np.float32)
        cacheable = self.params.cache_flow and self.augmentation is None
        key = f"{video.path}#{source}->{driving}"
        if cacheable:
            if self._flow_cache is None:
                self._flow_cache = FrameCache(64 * 2**20)
            cached = self._flow_cache.get(key)
            if cached is not None:
                return cached
        flow = dense_flow(pair[0], pair[1])
        if cacheable:
            self._flow_cache.put(key, flow)
        return flow

    def _test_sample(self, video: _Video, rng: np.random.Generator) -> dict:
        frames = self._augment(self._whole_video(video), rng)
        return {
            "video": torch.from_numpy(np.ascontiguousarray(frames.transpose(3, 0, 1, 2))),
            "name": video.name,
        }

    def _augment(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """uint8 (T, H, W, C) -> float32 in [0, 1], augmented when enabled."""
        frames = frames.astype(np.float32) / 255.0
        return self.augmentation(frames, rng) if self.augmentation is not None else frames

    def _whole_video(self, video: _Video) -> np.ndarray:
        """All frames, uint8 ``(T, H, W, C)`` at frame_shape, through the cache when enabled."""
        key = str(video.path)
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        frames = read_video(video.path, self.frame_shape)
        if self.is_train and len(frames) < MIN_FRAMES:
            raise VideoReadError(f"{video.path}: only {len(frames)} frame(s) decode, at least {MIN_FRAMES} needed")
        if self.cache is not None:
            self.cache.put(key, frames)
        return frames


def _channels_first(frame: np.ndarray) -> torch.Tensor:
    """A float ``(H, W, C)`` frame as a contiguous ``(C, H, W)`` tensor."""
    return torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))


class DatasetRepeater(Dataset):
    """Repeat a dataset ``num_repeats`` times per epoch (fewer, longer epochs; as the original)."""

    def __init__(self, dataset: Dataset, num_repeats: int = 100) -> None:
        if num_repeats < 1:
            raise ValueError(f"num_repeats must be >= 1, got {num_repeats}")
        self.dataset = dataset
        self.num_repeats = num_repeats

    def __len__(self) -> int:
        return self.num_repeats * len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return self.dataset[index % len(self.dataset)]


class PairedDataset(Dataset):
    """(source, driving) pairs of videos for animation.

    With ``dataset.pairs_list`` (a CSV with columns ``source,driving`` naming videos, with or
    without extension) the first ``number_of_pairs`` rows whose videos are in the dataset are
    used, in file order; otherwise ``number_of_pairs`` distinct random pairs among the first
    ``min(number_of_pairs, len(dataset))`` videos, drawn with ``seed``.
    Items are the two samples with keys prefixed ``source_`` and ``driving_``.
    """

    def __init__(self, dataset: FramesDataset, number_of_pairs: int, seed: int = 0) -> None:
        self.dataset = dataset
        pairs_list = getattr(dataset, "pairs_list", None)
        if pairs_list:
            self.pairs = self._pairs_from_csv(self._resolve(Path(pairs_list)), number_of_pairs)
        else:
            self.pairs = self._random_pairs(len(dataset), number_of_pairs, seed)

    def _resolve(self, path: Path) -> Path:
        """As given, else relative to the dataset's root (where the original kept it)."""
        if not path.is_absolute() and not path.exists():
            candidate = getattr(self.dataset, "root_dir", Path(".")) / path
            if candidate.exists():
                return candidate
        if not path.is_file():
            raise DataError(f"{path}: pairs_list file not found")
        return path

    def _pairs_from_csv(self, path: Path, number_of_pairs: int) -> list[tuple[int, int]]:
        index_of: dict[str, int] = {}
        for position, name in enumerate(self.dataset.videos):
            index_of.setdefault(name, position)
            index_of.setdefault(Path(name).stem, position)
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            columns = set(reader.fieldnames or [])
            if not {"source", "driving"} <= columns:
                raise DataError(f"{path}: pairs_list needs columns 'source' and 'driving', has {sorted(columns)}")
            rows = [(row["source"].strip(), row["driving"].strip()) for row in reader]
        if not rows:
            raise DataError(f"{path}: pairs_list has no rows")
        for line, (source, driving) in enumerate(rows, start=2):  # line 1 is the header
            missing = [name for name in (source, driving) if name not in index_of]
            if missing:
                raise DataError(f"{path} line {line}: no video {missing[0]!r} in the dataset's "
                                f"{'train' if self.dataset.is_train else 'test'} videos")
        return [(index_of[source], index_of[driving]) for source, driving in rows][:number_of_pairs]

    @staticmethod
    def _random_pairs(size: int, number_of_pairs: int, seed: int) -> list[tuple[int, int]]:
        count = min(number_of_pairs, size)
        grid = [(source, driving) for source in range(count) for driving in range(count)]
        chosen = np.random.default_rng(seed).choice(len(grid), size=min(len(grid), number_of_pairs), replace=False)
        return [grid[position] for position in chosen]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        source, driving = self.pairs[index]
        sample = {f"source_{key}": value for key, value in self.dataset[source].items()}
        sample.update({f"driving_{key}": value for key, value in self.dataset[driving].items()})
        return sample
