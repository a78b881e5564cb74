"""Write synthetic datasets to disk in the standard layout, and read their ground truth back.

Layout written by :func:`make_dataset`::

    out/meta.json                 kind, seed, sizes, format, splits, joint names, skeleton edges
    out/train/<name>.<ext>        one video: <name>.png (strip), <name>/ (PNG folder) or <name>.mp4
    out/train/<name>.npz          its ground truth: keypoints (T, J, 2) float32, visibility (T, J)
                                  bool, and for warped photos flow (T, H, W, 2) float16
    out/test/...                  the same for the test split
    out/cross/pairs.csv           with cross_pairs > 0: one row per cross-identity pair (source,
                                  driving, truth: paths relative to out/; source and driving are
                                  test videos)
    out/cross/<A>-by-<B>.<ext>    the ground-truth video of A's figure moved by B's motion
    out/cross/<A>-by-<B>.npz      its keypoints, visibility and the defined / moving pixel masks
                                  (:mod:`fomm.data.synthetic.cross_pairs`)
    out/cross-train/...           with train_cross_pairs > 0: the same for pairs of training videos,
                                  for training on cross pairs (``dataset_params.cross_pair_ratio``)

Video formats (the original FOMM readers accept all three):

* ``png-strip`` (default): one PNG per video, the frames side by side left to right
  (``H x T*W``). Lossless, one file per video, one decode to read. Measured on 200 sprite
  videos of 32 frames at 64x64 (2 shared cores): write 25 s wall / 17 CPU-s, read 2.4 ms per
  video, 61 KB per video; PNG folder: 31 s / 20 CPU-s, 11 ms, 230 KB; mp4: 39 s / 26 CPU-s,
  75 ms (PyAV decode), 15 KB but lossy. Keypoint learning on small frames wants lossless
  pixels, and reading speed matters most in training, so the strip is the default.
* ``png-folder``: ``<name>/000000.png, 000001.png, ...``; lossless, many small files.
* ``mp4``: H.264 via imageio-ffmpeg (``-crf 12``, yuv420p, so colours are chroma-subsampled);
  smallest, lossy, slowest to write (one ffmpeg process per video). For viewing and interop.

Ground-truth arrays are bit-for-bit reproducible from ``(kind, seed, index, frames, size)``;
the ``.npz`` and PNG files are also byte-identical between runs (fixed zip timestamps).
"""

from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing
import os
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fomm.data.synthetic import cross_pairs as cross, sprites, warped_photos
from fomm.data.synthetic.common import SyntheticVideo
from fomm.errors import DataError, OutputPathError

KINDS: tuple[str, ...] = ("sprites", "warped-photos")
#: Bounds that keep a typo (--size 100000) from asking for hundreds of GiB.
MAX_SIZE = 1024
MAX_VIDEO_BYTES = 2 * 2**30
#: Frame rates a video file may declare: a camera's slowest to a high-speed phone's fastest.
MIN_FPS, MAX_FPS = 1, 240
VIDEO_FORMATS: tuple[str, ...] = ("png-strip", "png-folder", "mp4")
DEFAULT_FORMAT = "png-strip"
#: Bump when generated content changes, so stale datasets can be recognised from meta.json.
GENERATOR_VERSION = 1
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
#: Folder of the cross-identity pairs (beside train/ and test/) and the table that lists them.
CROSS_FOLDER = "cross"
#: Folder of the cross pairs of training videos (what training on cross pairs reads).
TRAIN_CROSS_FOLDER = "cross-train"
CROSS_PAIRS_FILE = "pairs.csv"


@dataclass
class GroundTruth:
    """Ground truth of one video.

    Attributes:
        keypoints: ``(T, J, 2)`` float32 ``(x, y)`` in [-1, 1], -1/1 at the corner pixel centres.
        visibility: ``(T, J)`` bool.
        flow: ``(T, H, W, 2)`` float32 backward map to frame 0 (usable as a ``grid_sample``
            grid with ``align_corners=True``), or None for datasets without dense motion.
    """

    keypoints: np.ndarray
    visibility: np.ndarray
    flow: np.ndarray | None = None


@dataclass
class DatasetSummary:
    """What :func:`make_dataset` wrote.

    Attributes:
        out: dataset root.
        kind: ``sprites`` or ``warped-photos``.
        seed, frames, size, video_format: generation settings.
        train, test: video names per split, in index order.
        seconds: wall-clock generation time.
        total_bytes: size of everything written.
    """

    out: Path
    kind: str
    seed: int
    frames: int
    size: int
    video_format: str
    train: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)
    seconds: float = 0.0
    total_bytes: int = 0
    cross_pairs: int = 0
    train_cross_pairs: int = 0

    @property
    def videos(self) -> int:
        """Total number of videos."""
        return len(self.train) + len(self.test)

    def describe(self) -> str:
        """A few human-readable lines for the CLI."""
        return (
            f"{self.kind}: {self.videos} videos ({len(self.train)} train, {len(self.test)} test), "
            f"{self.frames} frames of {self.size}x{self.size}, format {self.video_format}, "
            f"seed {self.seed}"
            + (f", {self.cross_pairs} cross-identity pairs with ground truth" if self.cross_pairs else "")
            + (f", {self.train_cross_pairs} of training videos" if self.train_cross_pairs else "") + "\n"
            f"wrote {self.total_bytes / 1e6:.1f} MB in {self.seconds:.1f} s to {self.out}\n"
            f"  {self.out / 'train'}  {self.out / 'test'}  "
            + (f"{self.out / CROSS_FOLDER}  " if self.cross_pairs else "")
            + (f"{self.out / TRAIN_CROSS_FOLDER}  " if self.train_cross_pairs else "") + f"{self.out / 'meta.json'}"
        )


def generate_video(kind: str, seed: int, index: int, frames: int, size: int) -> SyntheticVideo:
    """Generate one video of ``kind``; depends only on the arguments (see the kind modules)."""
    if kind == "sprites":
        return sprites.generate_sprite_video(seed, index, frames, size)
    if kind == "warped-photos":
        return warped_photos.generate_warped_video(seed, index, frames, size)
    raise DataError(f"unknown dataset kind {kind!r}; choose from {', '.join(KINDS)}")


def is_test_video(index: int, test_fraction: float) -> bool:
    """Split rule: evenly spaced test videos, decided by the index alone.

    Video ``i`` is a test video iff ``round((i + 1) f) > round(i f)``; so there are
    ``round(N f)`` test videos among the first ``N``, and generating more videos never moves an
    existing one to the other split.
    """
    return int(np.floor((index + 1) * test_fraction + 0.5)) > int(np.floor(index * test_fraction + 0.5))


def video_file_name(name: str, video_format: str) -> str:
    """File (or folder) name of a video in ``video_format``."""
    return {"png-strip": f"{name}.png", "png-folder": name, "mp4": f"{name}.mp4"}[video_format]


def _encode_png(frame: np.ndarray) -> bytes:
    """RGB uint8 image -> PNG bytes (cv2 is several times faster than imageio's PNG writer)."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(frame[..., ::-1]),
                           [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def write_video(frames: np.ndarray, path: Path, video_format: str, fps: int = 25) -> None:
    """Write ``frames`` ``(T, H, W, 3)`` uint8 RGB to ``path`` in ``video_format``.

    ``path`` is the full file name (``.png`` / ``.mp4``) or, for ``png-folder``, the folder.
    """
    if video_format == "png-strip":
        # Frames left to right: (T, H, W, 3) -> (H, T*W, 3), the original FOMM strip layout.
        strip = np.ascontiguousarray(frames.transpose(1, 0, 2, 3).reshape(
            frames.shape[1], -1, frames.shape[3]))
        path.write_bytes(_encode_png(strip))
    elif video_format == "png-folder":
        path.mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(frames):
            (path / f"{t:06d}.png").write_bytes(_encode_png(frame))
    elif video_format == "mp4":
        import imageio.v2 as imageio

        # macro_block_size=2: keep the exact frame size (x264 with yuv420p needs even sizes only)
        # instead of imageio's default resize to a multiple of 16.
        writer = imageio.get_writer(
            str(path), format="FFMPEG", fps=fps, codec="libx264", quality=None,
            pixelformat="yuv420p", macro_block_size=2,
            output_params=["-crf", "12", "-preset", "fast", "-threads", "1"],
            ffmpeg_log_level="error",
        )
        try:
            for frame in frames:
                writer.append_data(frame)
        finally:
            writer.close()
    else:
        raise DataError(f"unknown video format {video_format!r}; choose from {VIDEO_FORMATS}")


def save_ground_truth(video: SyntheticVideo, path: Path) -> None:
    """Write ``video``'s ground truth to ``path`` (``.npz``; flow stored as float16).

    The zip entries get a fixed timestamp so identical arrays give identical files
    (``np.savez`` stamps the current time). Compression is off: it saves ~10% on float16 flow
    but triples the write time.
    """
    arrays = {"keypoints": video.keypoints.astype(np.float32),
              "visibility": video.visibility.astype(bool)}
    if video.flow is not None:
        arrays["flow"] = video.flow.astype(np.float16)
    _write_arrays(arrays, path, zipfile.ZIP_STORED)


def _write_arrays(arrays: dict[str, np.ndarray], path: Path, compression: int) -> None:
    """An ``.npz`` of ``arrays`` with fixed entry timestamps (identical arrays, identical file)."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_FIXED_ZIP_TIME)
            info.compress_type = compression
            archive.writestr(info, buffer.getvalue())


def save_cross_truth(truth: cross.CrossTruth, path: Path) -> None:
    """Write the arrays of a cross pair's truth (keypoints, visibility and the two masks) to
    ``path`` (``.npz``; deflated: the boolean masks shrink tenfold)."""
    arrays = {"keypoints": truth.keypoints.astype(np.float32), "visibility": truth.visibility.astype(bool),
              "defined": truth.defined.astype(bool), "moving": truth.moving.astype(bool)}
    _write_arrays(arrays, path, zipfile.ZIP_DEFLATED)


def read_meta(root: str | os.PathLike) -> dict:
    """The ``meta.json`` of a dataset folder as a dict; empty when absent (a dataset of the user's
    own videos has none). Raises DataError for one that is not a JSON object: a dataset whose
    facts are garbage is refused rather than read as having none."""
    path = Path(root) / "meta.json"
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable JSON file of dataset facts ({' '.join(str(error).split())[:120]})"
                        ) from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object of dataset facts, found a {type(meta).__name__}")
    return meta


def ground_truth_path(video_path: str | os.PathLike) -> Path:
    """The ``.npz`` next to a video file or PNG folder: ``train/x.mp4`` -> ``train/x.npz``."""
    path = Path(video_path)
    if path.suffix.lower() in (".png", ".mp4", ".gif", ".jpg", ".jpeg", ".avi", ".mov"):
        path = path.with_suffix("")
    return path.parent / f"{path.name}.npz"


def load_ground_truth(video_path: str | os.PathLike) -> GroundTruth:
    """Load the ground truth stored next to ``video_path`` (a video file or a PNG folder).

    Returns:
        :class:`GroundTruth` with flow converted back to float32 (None if not stored).
    """
    path = ground_truth_path(video_path)
    if not path.is_file():
        raise DataError(f"no ground truth for {video_path}: expected {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"keypoints", "visibility"} - set(data.files)
            if missing:
                raise DataError(f"{path}: ground truth without {', '.join(sorted(missing))}")
            flow = data["flow"].astype(np.float32) if "flow" in data.files else None
            keypoints, visibility = data["keypoints"], data["visibility"]
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        # allow_pickle=False refuses object arrays with a ValueError; garbage fails in many ways.
        raise DataError(f"{path}: not a readable ground-truth file ({' '.join(str(error).split())[:160]})") from None
    if keypoints.dtype.kind != "f" or keypoints.ndim != 3 or keypoints.shape[-1] != 2:
        raise DataError(f"{path}: keypoints must be a float (T, J, 2) array, got {keypoints.dtype} {keypoints.shape}")
    if visibility.shape != keypoints.shape[:2]:
        raise DataError(f"{path}: visibility {visibility.shape} does not match keypoints {keypoints.shape}")
    return GroundTruth(keypoints=keypoints, visibility=visibility.astype(bool), flow=flow)


@dataclass
class CrossPairTruth:
    """The arrays of a cross pair's truth (see :class:`fomm.data.synthetic.cross_pairs.CrossTruth`):
    ``keypoints`` ``(T, J, 2)`` float32 in [-1, 1], ``visibility`` ``(T, J)``, and the ``defined``
    and ``moving`` pixel masks ``(T, H, W)`` bool."""

    keypoints: np.ndarray
    visibility: np.ndarray
    defined: np.ndarray
    moving: np.ndarray


@dataclass(frozen=True)
class CrossPairFiles:
    """One cross-identity pair on disk: the ``source`` and ``driving`` videos, the
    ``truth`` video of the source's figure moved by the driving motion, and ``arrays``, its
    :class:`CrossPairTruth` file."""

    name: str
    source: Path
    driving: Path
    truth: Path

    @property
    def arrays(self) -> Path:
        return ground_truth_path(self.truth)


def load_cross_truth(path: str | os.PathLike) -> CrossPairTruth:
    """Read a cross pair's arrays (written by :func:`save_cross_truth`), checking their shapes."""
    path = Path(path)
    names = ("keypoints", "visibility", "defined", "moving")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [name for name in names if name not in data.files]
            if missing:
                raise DataError(f"{path}: cross-pair truth without {', '.join(missing)}")
            keypoints, visibility, defined, moving = (data[name] for name in names)
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: not a readable cross-pair truth file "
                        f"({' '.join(str(error).split())[:160]})") from None
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2 or visibility.shape != keypoints.shape[:2]:
        raise DataError(f"{path}: keypoints {keypoints.shape} and visibility {visibility.shape} do not fit")
    if defined.ndim != 3 or moving.shape != defined.shape or len(defined) != len(keypoints):
        raise DataError(f"{path}: masks {defined.shape} and {moving.shape} do not fit {len(keypoints)} frames")
    return CrossPairTruth(keypoints, visibility.astype(bool), defined.astype(bool), moving.astype(bool))


def list_cross_pairs(root: str | os.PathLike, folder: str = CROSS_FOLDER) -> list[CrossPairFiles]:
    """The cross-identity pairs of the dataset in ``root``, in the order of ``<folder>/pairs.csv``
    (``cross/``: pairs of test videos, for evaluation; ``cross-train/``: of training videos).

    Raises DataError when the dataset has none (made without ``--cross-pairs`` or
    ``--train-cross-pairs``) or a listed file is missing.
    """
    root = Path(root)
    table = root / folder / CROSS_PAIRS_FILE
    if not table.is_file():
        option = "--train-cross-pairs" if folder == TRAIN_CROSS_FOLDER else "--cross-pairs"
        raise DataError(f"{root} has no cross-identity pairs ({folder}/{CROSS_PAIRS_FILE}); make the "
                        f"dataset with `fomm make-dataset ... {option} N`")
    try:
        with open(table, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{table}: not a readable pairs table ({error})") from None
    pairs = []
    for number, row in enumerate(rows, start=2):
        if not {"source", "driving", "truth"} <= set(row) or None in row.values():
            raise DataError(f"{table}, line {number}: expected the columns source, driving, truth")
        truth = root / row["truth"]
        files = CrossPairFiles(ground_truth_path(truth).stem, root / row["source"], root / row["driving"], truth)
        for path in (files.source, files.driving, files.truth, files.arrays):
            if not path.exists():
                raise DataError(f"{table}, line {number}: {path} not found")
        pairs.append(files)
    if not pairs:
        raise DataError(f"{table} lists no pairs")
    return pairs


@dataclass(frozen=True)
class _Job:
    """One video to generate and write (picklable, for worker processes)."""

    kind: str
    seed: int
    index: int
    frames: int
    size: int
    video_format: str
    split_dir: str
    fps: int


def _run_job(job: _Job) -> tuple[int, str, int]:
    """Generate and write one video; returns ``(index, name, bytes written)``."""
    video = generate_video(job.kind, job.seed, job.index, job.frames, job.size)
    split = Path(job.split_dir)
    video_path = split / video_file_name(video.name, job.video_format)
    write_video(video.frames, video_path, job.video_format, job.fps)
    gt_path = split / f"{video.name}.npz"
    save_ground_truth(video, gt_path)
    if video_path.is_dir():
        size = sum(p.stat().st_size for p in video_path.iterdir())
    else:
        size = video_path.stat().st_size
    return job.index, video.name, size + gt_path.stat().st_size


@dataclass(frozen=True)
class _CrossJob:
    """One cross pair to generate and write (picklable, for worker processes)."""

    kind: str
    seed: int
    source: int
    driving: int
    frames: int
    size: int
    video_format: str
    cross_dir: str
    fps: int


def _run_cross_job(job: _CrossJob) -> tuple[str, str, str, str, int]:
    """Generate and write one cross pair's truth; returns ``(folder, source, driving, truth file,
    bytes)``."""
    truth = cross.cross_truth(job.kind, job.seed, job.source, job.driving, job.frames, job.size)
    folder = Path(job.cross_dir)
    video_path = folder / video_file_name(truth.name, job.video_format)
    write_video(truth.frames, video_path, job.video_format, job.fps)
    arrays = folder / f"{truth.name}.npz"
    save_cross_truth(truth, arrays)
    size = sum(p.stat().st_size for p in video_path.iterdir()) if video_path.is_dir() else video_path.stat().st_size
    return folder.name, truth.source, truth.driving, video_path.name, size + arrays.stat().st_size


def _run_any(job: _Job | _CrossJob) -> tuple:
    return _run_cross_job(job) if isinstance(job, _CrossJob) else _run_job(job)


def _worker_init() -> None:
    # Each worker is one of N processes on N cores: keep OpenCV from starting its own threads.
    cv2.setNumThreads(1)


def _dataset_info(kind: str) -> dict:
    """Kind-specific entries of meta.json (keypoint names, edges, conventions)."""
    if kind == "sprites":
        return {
            "joint_names": list(sprites.JOINT_NAMES),
            "skeleton_edges": [list(e) for e in sprites.SKELETON_EDGES],
            "part_names": list(sprites.PART_NAMES),
            "visibility": "False when out of frame or when the front-most part at the joint is "
                          "not one of the parts meeting there",
        }
    return {
        "joint_names": list(warped_photos.KEYPOINT_NAMES),
        "skeleton_edges": [list(e) for e in warped_photos.KEYPOINT_EDGES],
        "photos": list(warped_photos.PHOTOS),
        "flow": "flow[t, row, col] = (x, y) in frame 0 shown at pixel (row, col) of frame t; "
                "grid_sample(frame0, flow[t], align_corners=True) ~= frame t; stored float16",
        "visibility": "False when out of frame",
    }


def make_dataset(
    kind: str,
    out: str | os.PathLike,
    videos: int,
    frames: int,
    size: int,
    seed: int = 0,
    test_fraction: float = 0.2,
    video_format: str = DEFAULT_FORMAT,
    fps: int = 25,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    cross_pairs: int = 0,
    train_cross_pairs: int = 0,
) -> DatasetSummary:
    """Generate a synthetic dataset of ``videos`` videos into ``out`` (layout: module docstring).

    Args:
        kind: ``"sprites"`` or ``"warped-photos"``.
        out: dataset root; created if missing.
        videos, frames, size: number of videos, frames per video, square frame side.
        seed: dataset seed; video ``i`` depends only on ``(kind, seed, i, frames, size)``.
        test_fraction: share of test videos (split by :func:`is_test_video`).
        video_format: one of :data:`VIDEO_FORMATS`.
        fps: frame rate recorded in mp4 files and meta.json (:data:`MIN_FPS` to :data:`MAX_FPS`).
        workers: processes (at least 1); None = one per CPU core (at most 8) when there are 8+
            videos.
        overwrite: replace an existing dataset (its train/, test/, cross/ and meta.json) in ``out``.
        progress: show a tqdm bar.
        cross_pairs: number of cross-identity pairs of test videos to write into ``cross/``
            with their ground truth (:mod:`fomm.data.synthetic.cross_pairs`); chosen from
            ``(kind, seed)`` and the test split alone.
        train_cross_pairs: the same for pairs of training videos, into ``cross-train/``: data for
            training on cross pairs (``dataset_params.cross_pair_ratio``), never for evaluation.

    Raises DataError for impossible settings (fewer than 2 frames: no motion to learn or
    measure) and OutputPathError when ``out`` is not a folder.

    Returns:
        :class:`DatasetSummary`. ``meta.json`` is written last, so its presence marks a
        complete dataset.
    """
    if kind not in KINDS:
        raise DataError(f"unknown dataset kind {kind!r}; choose from {', '.join(KINDS)}")
    if video_format not in VIDEO_FORMATS:
        raise DataError(f"unknown video format {video_format!r}; choose from {VIDEO_FORMATS}")
    if videos < 1 or frames < 2 or size < 8:
        raise DataError(f"need videos >= 1, frames >= 2 (a video of one frame has no motion), size >= 8 "
                        f"(got {videos}, {frames}, {size})")
    if workers is not None and workers < 1:
        raise DataError(f"workers must be at least 1, got {workers}")
    if not MIN_FPS <= fps <= MAX_FPS:
        raise DataError(f"fps must be between {MIN_FPS} and {MAX_FPS}, got {fps}")
    if cross_pairs < 0 or train_cross_pairs < 0:
        raise DataError(f"the number of cross pairs must not be negative, got {min(cross_pairs, train_cross_pairs)}")
    if size > MAX_SIZE:
        raise DataError(f"size {size} is above {MAX_SIZE}: the synthetic datasets are for small models "
                        f"(a {size}x{size} frame alone is {3 * size * size / 2**20:.0f} MiB)")
    if frames * 3 * size * size > MAX_VIDEO_BYTES:
        raise DataError(f"{frames} frames of {size}x{size} make a video of {frames * 3 * size * size / 2**30:.1f} GiB "
                        f"in memory; at most {MAX_VIDEO_BYTES / 2**30:.0f} GiB: fewer frames or a smaller size")
    if video_format == "mp4" and size % 2:
        raise DataError(f"mp4 (yuv420p) needs an even frame size, got {size}")
    if not (math.isfinite(test_fraction) and 0.0 <= test_fraction <= 1.0):
        raise DataError(f"test_fraction must be in [0, 1], got {test_fraction}")
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise OutputPathError(f"{root} exists and is not a folder")
    test_indices = [i for i in range(videos) if is_test_video(i, test_fraction)]
    pairs = _choose_cross_pairs(kind, seed, test_indices, cross_pairs, "test")
    train_indices = [i for i in range(videos) if not is_test_video(i, test_fraction)]
    train_pairs = _choose_cross_pairs(kind, seed, train_indices, train_cross_pairs, "training")
    start = time.perf_counter()
    existing = [root / n for n in ("train", "test", CROSS_FOLDER, TRAIN_CROSS_FOLDER, "meta.json")
                if (root / n).exists()]
    if existing:
        if not overwrite:
            raise DataError(f"{root} already holds a dataset ({existing[0].name}); "
                                  "pass overwrite=True (--overwrite) to replace it")
        for path in existing:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    try:
        for split in ("train", "test") + ((CROSS_FOLDER,) if pairs else ()) + ((TRAIN_CROSS_FOLDER,) if train_pairs else ()):
            (root / split).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputPathError(f"{root}: cannot create the dataset folders ({error.strerror})") from None

    jobs: list[_Job | _CrossJob] = [
        _Job(kind, seed, i, frames, size, video_format,
             str(root / ("test" if is_test_video(i, test_fraction) else "train")), fps)
        for i in range(videos)
    ]
    jobs += [_CrossJob(kind, seed, a, b, frames, size, video_format, str(root / folder), fps)
             for folder, chosen in ((CROSS_FOLDER, pairs), (TRAIN_CROSS_FOLDER, train_pairs)) for a, b in chosen]
    if workers is None:
        workers = min(os.cpu_count() or 1, 8) if videos >= 8 else 1
    results: list[tuple] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc=f"make-dataset {kind}", unit="video")
    if workers > 1:
        # spawn, not fork: forking a parent that has already run OpenCV or torch thread pools
        # can deadlock the child (seen in the test suite). The cost: ~1 s of worker start-up,
        # and scripts calling this must use the `if __name__ == "__main__":` guard.
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_worker_init) as pool:
            for result in pool.imap_unordered(_run_any, jobs, chunksize=max(1, len(jobs) // (8 * workers))):
                results.append(result)
                if bar is not None:
                    bar.update()
    else:
        for job in jobs:
            results.append(_run_any(job))
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    video_results = sorted(r for r in results if len(r) == 3)
    names = {index: name for index, name, _ in video_results}
    train = [names[j.index] for j in jobs if isinstance(j, _Job) and j.split_dir.endswith("train")]
    test = [names[j.index] for j in jobs if isinstance(j, _Job) and j.split_dir.endswith("test")]
    cross_written = {(r[0], r[1], r[2]): r[3] for r in results if len(r) == 5}
    for folder, split, chosen in ((CROSS_FOLDER, "test", pairs), (TRAIN_CROSS_FOLDER, "train", train_pairs)):
        if chosen:
            _write_pairs_table(root, folder, split, [(names[a], names[b], cross_written[folder, names[a], names[b]])
                                                     for a, b in chosen], video_format)

    meta = {
        "kind": kind,
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "videos": videos,
        "num_train": len(train),
        "num_test": len(test),
        "frames": frames,
        "frame_shape": [size, size, 3],
        "video_format": video_format,
        "video_extension": {"png-strip": ".png", "png-folder": "", "mp4": ".mp4"}[video_format],
        "fps": fps,
        "test_fraction": test_fraction,
        "keypoint_convention": "(x, y) in [-1, 1]; -1 and 1 are the centres of the corner "
                               "pixels: x = 2*col/(W-1) - 1",
        "num_keypoints": len(sprites.JOINT_NAMES) if kind == "sprites"
        else warped_photos.NUM_KEYPOINTS,
        **_dataset_info(kind),
        "train": train,
        "test": test,
    }
    if pairs:
        meta["cross_pairs"] = len(pairs)
    if train_pairs:
        meta["train_cross_pairs"] = len(train_pairs)
    if pairs or train_pairs:
        meta["cross_pairs_truth"] = (
            "relative animation: the source's figure performing the driving video's motion from the "
            "source's own first pose (sprites: every generating channel moves as the driving one, "
            "value(t) = A(0) + B(t) - B(0); warped photos: the source photo under the driving warps). "
            "Absolute animation has no ground truth here.")
    meta_path = root / "meta.json"
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return DatasetSummary(
        out=root, kind=kind, seed=seed, frames=frames, size=size, video_format=video_format,
        train=train, test=test, seconds=time.perf_counter() - start,
        total_bytes=sum(r[-1] for r in results) + meta_path.stat().st_size, cross_pairs=len(pairs),
        train_cross_pairs=len(train_pairs),
    )


def _choose_cross_pairs(kind: str, seed: int, indices: list[int], count: int, split: str) -> list[tuple[int, int]]:
    """The pairs of ``split`` videos :func:`make_dataset` writes, or DataError when the split is too small."""
    if count == 0:
        return []
    try:
        return cross.choose_pairs(kind, seed, indices, count)
    except ValueError as error:
        raise DataError(f"{error} in the {split} split: make more videos or change the test fraction") from None


def _write_pairs_table(root: Path, folder: str, split: str, rows: list[tuple[str, str, str]],
                       video_format: str) -> None:
    """``<folder>/pairs.csv``: source, driving (videos of ``split``) and truth videos, as paths
    relative to ``root``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["source", "driving", "truth"])
    for source, driving, truth in rows:
        writer.writerow([f"{split}/{video_file_name(source, video_format)}",
                         f"{split}/{video_file_name(driving, video_format)}", f"{folder}/{truth}"])
    (root / folder / CROSS_PAIRS_FILE).write_text(buffer.getvalue())
