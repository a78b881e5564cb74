"""Training-sample throughput of ``FramesDataset`` through a torch DataLoader.

Writes N small H.264 videos (64 frames each, at 64x64 and at 256x256) into a temporary folder,
then times full passes over a ``DatasetRepeater`` with 0 and 2 workers, with and without
``cache_frames``, and prints a Markdown table of samples per second (best of three epochs after
a warm-up epoch that starts the workers and fills the caches).

    python benchmarks/data_loading.py [--videos 16] [--frames 64] [--repeats 8] [--batch 8]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=8, help="passes over the videos per timed epoch")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    args = parser.parse_args()
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
