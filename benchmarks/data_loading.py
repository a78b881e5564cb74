"""Training-sample throughput of ``FramesDataset`` through a torch DataLoader.

Writes N small H.264 videos (64 frames each, at 64x64 and at 256x256) into a temporary folder,
then times full passes over a ``DatasetRepeater`` with 0 and 2 workers, with and without
``cache_frames``, and prints a Markdown table of samples per second (best of three epochs after
a warm-up epoch that starts the workers and fills the caches).

    python benchmarks/data_loading.py [--videos 16] [--frames 64] [--repeats 8] [--batch 8]

``--training`` instead times whole training steps of ``configs/sprites-64.yaml`` (batch 8, 64x64)
through ``Trainer.train`` on those videos with 0, 1 and 2 loader workers and with
``cache_frames``, in float32 and bf16, against the same run on in-memory frames (no decoding):
the difference is what loading costs the step that does not overlap with training.

    python benchmarks/data_loading.py --training --threads 2 [--steps 40]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from fomm.config import DatasetParams
from fomm.data import DatasetRepeater, FramesDataset, write_video


def make_videos(folder: Path, count: int, frames: int, size: int) -> None:
    """Moving smooth patterns (realistic for the codec: not noise, not flat)."""
    folder.mkdir(parents=True)
    rows, cols = np.mgrid[:size, :size].astype(np.float32) / size
    for index in range(count):
        phase = index * 0.37
        video = [
            np.stack(
                [
                    128 + 100 * np.sin(2 * np.pi * (cols + 0.02 * t + phase)),
                    128 + 100 * np.sin(2 * np.pi * (rows * 1.5 - 0.01 * t)),
                    128 + 100 * np.cos(2 * np.pi * (rows + cols + phase)),
                ],
                axis=-1,
            ).astype(np.uint8)
            for t in range(frames)
        ]
        write_video(folder / f"video{index:03d}.mp4", video, fps=25)


def samples_per_second(root: Path, size: int, workers: int, cache: bool, repeats: int, batch: int) -> float:
    params = DatasetParams(root_dir=str(root), frame_shape=(size, size, 3), cache_frames=cache)
    dataset = DatasetRepeater(FramesDataset(params, is_train=True), num_repeats=repeats)
    torch.manual_seed(0)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    # One warm-up epoch: starts the workers and, with caching, fills the caches, as in a long run.
    for _ in loader:
        pass
    best = 0.0
    for _ in range(3):  # best of three: the least disturbed by other load on the machine
        start = time.perf_counter()
        count = 0
        for batch_ in loader:
            count += batch_["source"].shape[0]
        best = max(best, count / (time.perf_counter() - start))
    return best


class InMemoryPairs(torch.utils.data.Dataset):
    """``num`` fixed random 64x64 source/driving pairs: training without any decoding."""

    def __init__(self, num: int, size: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.frames = torch.rand(num, 2, 3, size, size, generator=generator)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict:
        return {"source": self.frames[index, 0], "driving": self.frames[index, 1]}


def training_seconds_per_step(root: Path | None, mode: str, workers: int, steps: int, cache: bool = False) -> float:
    """s/step of ``steps`` steps of sprites-64 through ``Trainer.train`` (warm-up step and the
    final checkpoint included alike in every row) on ``root``'s videos, or in memory when None."""
    from fomm.models.registry import load_config
    from fomm.training import Trainer

    config = load_config("sprites-64")
    assert config.train_params is not None and config.dataset_params is not None
    config.train_params.mixed_precision = mode
    config.train_params.num_workers = workers
    config.train_params.num_repeats = 1000  # one epoch: the loader (and its workers) starts once
    config.dataset_params.root_dir = str(root)
    config.dataset_params.cache_frames = cache
    dataset = InMemoryPairs(256, 64) if root is None else None
    with tempfile.TemporaryDirectory() as log_dir:
        trainer = Trainer(config, log_dir, device="cpu", dataset=dataset, max_steps=steps, progress=False)
        return trainer.train().seconds_per_step


def training_table(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary) / "videos64"
        make_videos(root / "train", args.videos, args.frames, 64)
        (root / "test").mkdir()
        for mode in ("no", "bf16"):
            rows.append((mode, "in memory", training_seconds_per_step(None, mode, 0, args.steps)))
            for workers in (0, 1, 2):
                rows.append((mode, f"{workers} workers", training_seconds_per_step(root, mode, workers, args.steps)))
            rows.append((mode, "0 workers, cache_frames",
                         training_seconds_per_step(root, mode, 0, args.steps, cache=True)))
    print(f"sprites-64 training steps (batch 8, 64x64, {args.steps} steps, {torch.get_num_threads()} torch "
          f"thread(s)) on {args.videos} H.264 videos of {args.frames} frames\n")
    print("| mixed_precision | data | s/step | over in-memory |")
    print("| --- | --- | --- | --- |")
    for mode, data, seconds in rows:
        in_memory = next(s for m, d, s in rows if m == mode and d == "in memory")
        print(f"| {mode} | {data} | {seconds:.3f} | {100 * (seconds - in_memory) / seconds:+.0f} % |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=8, help="passes over the videos per timed epoch")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--training", action="store_true", help="time training steps instead (see above)")
    parser.add_argument("--steps", type=int, default=40, help="--training: steps per row")
    parser.add_argument("--threads", type=int, default=2, help="--training: torch threads")
    args = parser.parse_args()
    if args.training:
        training_table(args)
        return
    torch.set_num_threads(1)  # the DataLoader workers are the parallelism being measured
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        for size in args.sizes:
            root = Path(temporary) / f"videos{size}"
            make_videos(root / "train", args.videos, args.frames, size)
            (root / "test").mkdir()
            for workers in (0, 2):
                for cache in (False, True):
                    rate = samples_per_second(root, size, workers, cache, args.repeats, args.batch)
                    rows.append((size, workers, cache, rate))
    print(f"{args.videos} videos x {args.frames} frames (H.264), batch {args.batch}, "
          f"{args.videos * args.repeats} samples per epoch, best of 3 epochs after a warm-up epoch\n")
    print("| frame size | workers | cache_frames | samples/s |")
    print("| --- | --- | --- | --- |")
    for size, workers, cache, rate in rows:
        print(f"| {size}x{size} | {workers} | {'yes' if cache else 'no'} | {rate:.0f} |")


if __name__ == "__main__":
    main()
