"""Tiny configs and datasets for the training tests (fast on a shared 2-core CPU)."""

from __future__ import annotations

import copy
import math
import os
import socket
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from fomm.config import FommConfig

#: The original implementation's checkpoint, config and outputs (see its README.md).
REFERENCE_FIXTURES = Path(__file__).resolve().parent / "data" / "fomm-reference"


def reference_fixture(name: str) -> Path:
    """A file of the reference fixture set (``config.yaml``, ``checkpoint.pth.tar``, ...)."""
    path = REFERENCE_FIXTURES / name
    assert path.is_file(), f"reference fixture missing: {path}"
    return path


TINY_CONFIG: dict[str, Any] = {
    "dataset_params": {"root_dir": "unused", "frame_shape": [32, 32, 3]},
    "model_params": {
        "common_params": {"num_kp": 4, "num_channels": 3, "estimate_jacobian": True},
        "kp_detector_params": {"temperature": 0.1, "block_expansion": 8, "max_features": 32,
                               "num_blocks": 3, "scale_factor": 0.5},
        "generator_params": {
            "block_expansion": 8, "max_features": 32, "num_down_blocks": 2, "num_bottleneck_blocks": 1,
            "estimate_occlusion_map": True,
            "dense_motion_params": {"block_expansion": 8, "max_features": 32, "num_blocks": 3,
                                    "scale_factor": 0.5},
        },
        "discriminator_params": {"scales": [1], "block_expansion": 8, "max_features": 32, "num_blocks": 2,
                                 "sn": True},
    },
    "train_params": {
        "num_epochs": 2, "num_repeats": 1, "epoch_milestones": [1], "lr_generator": 2e-3,
        "lr_discriminator": 2e-3, "lr_kp_detector": 2e-3, "batch_size": 2, "scales": [1, 0.5],
        "checkpoint_freq": 1,
        "transform_params": {"sigma_affine": 0.05, "sigma_tps": 0.005, "points_tps": 5},
        "loss_weights": {"generator_gan": 0, "discriminator_gan": 1, "feature_matching": [0, 0],
                         "perceptual": [10], "equivariance_value": 10, "equivariance_jacobian": 10},
        "perceptual_backbone": "pixel", "seed": 3,
        # float32: the tests compare runs exactly (resume, DDP, reference); bf16 is tested on its own.
        "mixed_precision": "no",
    },
}


def tiny_config(**train_overrides: Any) -> FommConfig:
    """The tiny config; keyword arguments replace ``train_params`` entries
    (``loss_weights`` is merged)."""
    data = copy.deepcopy(TINY_CONFIG)
    weights = train_overrides.pop("loss_weights", {})
    data["train_params"].update(train_overrides)
    data["train_params"]["loss_weights"].update(weights)
    return FommConfig.from_dict(data)


def blob_batch() -> dict[str, torch.Tensor]:
    """Two plain pairs of :class:`MovingBlobs` as a batch: ``source`` and ``driving`` ``(2, 3, 32, 32)``."""
    blobs = MovingBlobs(4)
    return {key: torch.stack([blobs[i][key] for i in range(2)]) for key in ("source", "driving")}


def generator_objective(config: FommConfig) -> torch.nn.Module:
    """The generator objective of a fresh trainer of ``config`` (weights from its seed, CPU)."""
    from fomm.training import Trainer

    trainer = Trainer(config, "unused-log-dir", device="cpu", dataset=MovingBlobs(4), progress=False)
    return trainer.objectives["generator"]


def train_briefly(config: FommConfig, dataset_root: Path, folder: Path, steps: int = 2,
                  checkpoint: Optional[Path] = None) -> dict[str, Any]:
    """``fomm train`` for ``steps`` steps (one thread, CPU) of ``config`` on the dataset at
    ``dataset_root``, from ``checkpoint`` when given, its config file and run written under
    ``folder``; the checkpoint it wrote."""
    import yaml

    from fomm.cli import main
    from fomm.training import CHECKPOINT_NAME

    data = config.to_dict()
    data["dataset_params"]["root_dir"] = str(dataset_root)
    config_file, run = folder / "config.yaml", folder / "run"
    config_file.write_text(yaml.safe_dump(data))
    assert main(["train", "--config", str(config_file), "--log-dir", str(run), "--max-steps", str(steps),
                 "--threads", "1", "--no-progress", "--device", "cpu",
                 *(["--checkpoint", str(checkpoint)] if checkpoint is not None else [])]) == 0
    return torch.load(run / CHECKPOINT_NAME, weights_only=True)


class MovingBlobs(Dataset):
    """Pairs of frames of a coloured blob moving on a gradient background, ``(3, size, size)``
    in [0, 1]; item ``i`` is deterministic (no RNG), so runs differ only through the trainer."""

    def __init__(self, num_items: int = 8, size: int = 32) -> None:
        self.num_items = num_items
        self.size = size
        line = torch.linspace(-1, 1, size)
        self.y, self.x = torch.meshgrid(line, line, indexing="ij")

    def __len__(self) -> int:
        return self.num_items

    def frame(self, i: int, t: float) -> torch.Tensor:
        angle = 2 * math.pi * (i / self.num_items + 0.15 * t)
        cx, cy = 0.45 * math.cos(angle), 0.45 * math.sin(angle)
        blob = torch.exp(-((self.x - cx) ** 2 + (self.y - cy) ** 2) / 0.05)
        colour = torch.tensor([0.9, 0.3 + 0.05 * (i % 5), 0.2]).view(3, 1, 1)
        background = 0.25 + 0.2 * torch.stack([self.x, self.y, -self.x]) * 0.5
        return (background * (1 - blob) + colour * blob).clamp(0, 1)

    def __getitem__(self, index: int) -> dict:
        return {"source": self.frame(index, 0.0), "driving": self.frame(index, 1.0 + index % 3),
                "name": f"blob{index}", "nearby": False}


class NoisyBlobs(MovingBlobs):
    """:class:`MovingBlobs` plus noise from a per-process numpy generator with ``reseed`` and
    ``_rng``, the interface of ``FramesDataset`` the trainer checkpoints."""

    def __init__(self, num_items: int = 8, size: int = 32) -> None:
        super().__init__(num_items, size)
        self._generator = np.random.default_rng(0)

    def reseed(self, seed: int) -> None:
        self._generator = np.random.default_rng(seed)

    def _rng(self) -> np.random.Generator:
        return self._generator

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        noise = torch.from_numpy(self._generator.normal(0, 0.02, size=(3, self.size, self.size)).astype(np.float32))
        item["driving"] = (item["driving"] + noise).clamp(0, 1)
        return item


class NanBlobs(MovingBlobs):
    """Driving frames full of NaN: the losses become NaN on the first step."""

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        item["driving"] = torch.full_like(item["driving"], float("nan"))
        return item


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _join_group(rank: int, world_size: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)


def ddp_train_worker(rank: int, world_size: int, port: int, log_dir: str, out_dir: str) -> None:
    """A 2-step DDP training run on CPU (gloo); saves this rank's final state dicts."""
    from fomm.training import Trainer
    from fomm.training.distributed import cleanup_distributed

    _join_group(rank, world_size, port)
    config = tiny_config(loss_weights={"generator_gan": 1, "feature_matching": [1, 1]})
    trainer = Trainer(config, log_dir, device="cpu", dataset=MovingBlobs(8), max_steps=2, progress=False)
    result = trainer.train()
    states = {name: getattr(trainer.model, name).state_dict() for name in ("kp_detector", "generator", "discriminator")}
    torch.save({"states": states, "global_step": result.global_step, "world_size": trainer.ctx.world_size},
               Path(out_dir) / f"rank{rank}.pt")
    cleanup_distributed()


def batchnorm_worker(rank: int, world_size: int, port: int, inputs: torch.Tensor, weights: torch.Tensor,
                     out_dir: str) -> None:
    """All-reduce batch norm on this rank's share of ``inputs``; saves stats and gradients."""
    import torch.distributed as dist

    from fomm.training.distributed import AllReduceBatchNorm2d

    _join_group(rank, world_size, port)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    share = inputs.shape[0] // world_size
    x = inputs[rank * share:(rank + 1) * share].clone().requires_grad_(True)
    norm = AllReduceBatchNorm2d(inputs.shape[1], momentum=0.3)
    norm.train()
    for _ in range(2):  # two updates of the running statistics
        out = norm(x)
    (out * weights[rank * share:(rank + 1) * share]).sum().backward()
    torch.save({"running_mean": norm.running_mean, "running_var": norm.running_var, "out": out.detach(),
                "input_grad": x.grad, "weight_grad": norm.weight.grad, "batches": norm.num_batches_tracked},
               Path(out_dir) / f"bn{rank}.pt")
    dist.destroy_process_group()


class FlowBlobs(MovingBlobs):
    """:class:`MovingBlobs` with a (zero) source -> driving flow and every other pair nearby."""

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        item["flow"] = torch.zeros(2, self.size, self.size)
        item["nearby"] = index % 2 == 0
        return item
