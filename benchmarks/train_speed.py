"""Seconds per training iteration of ``fomm.training.Trainer`` on this machine.

Setups:

* ``vox-256``: the published vox-256 architecture and losses (``configs/vox-256.yaml``), batch 2 at
  256x256, perceptual loss through VGG19 with **randomly initialised** weights (the ImageNet file
  cannot be fetched offline; the cost is the same), no GAN (as vox-256.yaml).
* ``sprites-64``: ``configs/sprites-64.yaml`` at its own batch size (pixel pyramid, no GAN).
* any other name in ``configs/`` (``sprites-64-fullres``, the bundled model's architecture, ...)
  at its own batch size.

Batches are random tensors (no decoding), so this measures the model, losses and optimiser
steps only. One warm-up step is not timed. Prints a Markdown table::

    python benchmarks/train_speed.py --steps 3 --threads 2
    python benchmarks/train_speed.py --setups sprites-64 sprites-64-fullres --steps 10 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
from torch.utils.data import Dataset

from fomm.config import load_config
from fomm.models.vgg import Vgg19Features
from fomm.training import Trainer


class RandomPairs(Dataset):
    """``num`` random ``(3, size, size)`` source/driving pairs (only its length matters here)."""

    def __init__(self, size: int, num: int) -> None:
        self.size, self.num = size, num

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, index: int) -> dict:
        generator = torch.Generator().manual_seed(index)
        return {"source": torch.rand(3, self.size, self.size, generator=generator),
                "driving": torch.rand(3, self.size, self.size, generator=generator)}


def measure(name: str, batch_size: int | None, steps: int, device: str) -> dict:
    config = load_config(name)  # a packaged config, by name
    params = config.train_params
    assert params is not None and config.dataset_params is not None
    if batch_size is not None:
        params.batch_size = batch_size
    size = config.dataset_params.frame_shape[0]
    vgg = Vgg19Features() if params.perceptual_backbone == "vgg19" else None  # random init: offline
    with tempfile.TemporaryDirectory() as log_dir:
        trainer = Trainer(config, log_dir, device=device, dataset=RandomPairs(size, params.batch_size),
                          vgg=vgg, progress=False)
        batch = {key: torch.stack([trainer.dataset[i][key] for i in range(params.batch_size)])
                 for key in ("source", "driving")}
        trainer.train_step(batch)  # warm-up: allocator, oneDNN primitive caches
        times = []
        for _ in range(steps):
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            trainer.train_step(batch)
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return {"setup": name, "size": size, "batch": params.batch_size, "perceptual": params.perceptual_backbone,
            "gan": params.loss_weights.generator_gan != 0, "median": statistics.median(times), "min": min(times),
            "steps": steps, "device": str(trainer.device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per setup (after one warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--setups", nargs="+", default=["sprites-64", "vox-256"])
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    batch_sizes = {"vox-256": 2}
    rows = [measure(name, batch_sizes.get(name), args.steps, args.device) for name in args.setups]
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPU(s), "
          f"load average at the end {load} (other jobs on the machine inflate these times)\n")
    print("| setup | frames | batch | perceptual | GAN | device | s/iter (median) | s/iter (min) | samples/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        vgg = "vgg19 (random init)" if row["perceptual"] == "vgg19" else row["perceptual"]
        print(f"| {row['setup']} | {row['size']}x{row['size']} | {row['batch']} | {vgg} | {'yes' if row['gan'] else 'no'} "
              f"| {row['device']} | {row['median']:.3f} | {row['min']:.3f} | {row['batch'] / row['median']:.3g} |")


if __name__ == "__main__":
    main()
