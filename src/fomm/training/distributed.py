"""Helpers for multi-process (DistributedDataParallel) training.

``fomm train`` started with ``torchrun --nproc_per_node N`` finds ``WORLD_SIZE``/``RANK``/
``LOCAL_RANK`` in its environment and joins a process group: NCCL when training on CUDA, gloo on
the CPU. Each process loads its own shard of every epoch (:class:`EpochSampler`), so the effective
batch size is ``batch_size x world_size``.

Batch normalisation is synchronised across processes so that the distributed run normalises with
the statistics of the whole (effective) batch, as one process with the big batch would:
``nn.SyncBatchNorm`` on GPUs, and on the CPU (where ``SyncBatchNorm`` refuses to run)
:class:`AllReduceBatchNorm2d`, which all-reduces per-channel sums, sums of squares and counts with
gloo. Both keep the ``BatchNorm2d`` parameter and buffer names, so checkpoints still load into the
plain model.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import Sampler

from ..errors import DataError

__all__ = [
    "DistributedContext",
    "AllReduceBatchNorm2d",
    "EpochSampler",
    "init_distributed",
    "cleanup_distributed",
    "convert_batchnorm",
    "all_reduce_mean",
    "all_gather_objects",
    "is_distributed",
]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, on ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: Optional[str] = None

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes checkpoints."""
        return self.rank == 0


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_distributed(device: torch.device) -> DistributedContext:
    """Join the process group described by torchrun's environment, if any.

    ``device`` is the device asked for (``resolve_device``); under CUDA each process takes
    ``cuda:LOCAL_RANK``. Without ``WORLD_SIZE`` > 1 this is a no-op single-process context.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext(device=device)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device,
                              backend=backend)


def cleanup_distributed(completed: bool = True) -> None:
    """Leave the process group (no-op without one).

    After a ``completed`` run every process first waits for the others (a barrier): a process that
    tore its connections down while another was still writing its checkpoint made gloo abort the
    other one (``terminate called without an active exception``, SIGABRT). After a failure there
    is no waiting: the other processes may never arrive.
    """
    if dist.is_available() and dist.is_initialized():
        if completed and dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes whose backward sums the incoming gradients over processes too: every
    rank's loss depends on every rank's contribution to the shared statistics."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:  # type: ignore[override]
        out = tensor.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        out = grad.contiguous().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out


class AllReduceBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` whose training-mode statistics cover the batches of all processes.

    Per channel, ``sum x``, ``sum x^2`` and the element count are all-reduced (one collective per
    call, differentiable), giving the mean and biased variance used to normalise; the running
    statistics are updated with the unbiased variance and ``momentum`` exactly as ``BatchNorm2d``
    does. Outside training, or without a process group, it is plain ``BatchNorm2d``. Works with
    any backend (meant for gloo on the CPU, where ``nn.SyncBatchNorm`` is unavailable).
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        channels = x.shape[1]
        # Statistics in float32 at least: sums of squares lose precision fast in half precision.
        x32 = x.float()
        count = x32.new_full((1,), x.numel() / channels)
        local = torch.cat([x32.sum(dim=(0, 2, 3)), (x32 * x32).sum(dim=(0, 2, 3)), count])
        total = _AllReduceSum.apply(local)
        total_count = total[-1]
        mean = total[:channels] / total_count
        variance = (total[channels:2 * channels] / total_count - mean * mean).clamp_min(0)

        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                if self.momentum is None:  # cumulative moving average, as BatchNorm2d
                    factor = 1.0 / float(self.num_batches_tracked)
                else:
                    factor = self.momentum
                n = float(total_count)
                unbiased = variance * (n / max(n - 1.0, 1.0))
                self.running_mean.mul_(1 - factor).add_(mean.detach().to(self.running_mean.dtype), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.detach().to(self.running_var.dtype), alpha=factor)

        scale = torch.rsqrt(variance + self.eps)
        out = (x32 - mean.view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return out.to(x.dtype)


def convert_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every ``BatchNorm2d`` of ``module`` by its synchronised version for ``device``:
    ``nn.SyncBatchNorm`` on CUDA, :class:`AllReduceBatchNorm2d` elsewhere. Parameters and buffers
    are moved over (same objects), so names and values are unchanged."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert_to_all_reduce(module)


def _convert_to_all_reduce(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, AllReduceBatchNorm2d):
        converted = AllReduceBatchNorm2d(module.num_features, eps=module.eps, momentum=module.momentum,
                                         affine=module.affine, track_running_stats=module.track_running_stats)
        if module.affine:
            converted.weight = module.weight
            converted.bias = module.bias
        converted.running_mean = module.running_mean
        converted.running_var = module.running_var
        converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
        return converted
    for name, child in module.named_children():
        module.add_module(name, _convert_to_all_reduce(child))
    return module


def all_reduce_mean(values: Tensor) -> Tensor:
    """Mean over processes of a tensor (itself when not distributed)."""
    if not is_distributed():
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / dist.get_world_size()


def all_gather_objects(value: object) -> list:
    """Every process's ``value``, by rank (``[value]`` when not distributed)."""
    if not is_distributed():
        return [value]
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


class EpochSampler(Sampler[int]):
    """Shuffled indices, the same permutation for a given ``(seed, epoch)`` on every process,
    sharded by rank (``rank::world_size``, padded by wrapping so that every rank gets
    ``ceil(n / world_size)`` indices, as ``DistributedSampler``).

    ``set_epoch(epoch, start=k)`` makes the next iteration skip the first ``k`` indices of this
    rank's shard, which is how a run resumed in the middle of an epoch sees the same remaining
    samples as the uninterrupted run. The permutation uses its own generator, never the global RNG.
    """

    def __init__(self, dataset_size: int, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle: bool = True) -> None:
        if dataset_size <= 0:
            raise DataError("the training dataset is empty: no sample to train on")
        self.dataset_size = dataset_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.start = 0
        self.num_samples = math.ceil(dataset_size / world_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch = epoch
        self.start = start

    def _shard(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.dataset_size, generator=generator).tolist()
        else:
            order = list(range(self.dataset_size))
        total = self.num_samples * self.world_size
        order = (order * math.ceil(total / len(order)))[:total]
        return order[self.rank:total:self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._shard()[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start
