"""The training loop of one config of any family, from scratch, resumed, or fine-tuned from an
original checkpoint.

What an iteration does is the family's :class:`~fomm.models.family.TrainingPlan` (its original
``train.py``): a sequence of stages, each a backward pass of its summed losses and a step of its
Adam optimisers. FOMM: the keypoint detector and generator step on the generator losses
(reconstruction pyramid, equivariance, generator GAN and feature matching; ours: optical-flow
consistency), then, with a GAN, the discriminator on its own. TPSMM: one stage over the motion and
inpainting networks and the background predictor (from ``bg_start``). MRAA: one stage over all its
networks. ``stage="avd"`` trains a TPSMM or MRAA model's AVD network alone (``fomm train-avd``).
Learning rates follow ``MultiStepLR(epoch_milestones, gamma=0.1)`` per epoch; an epoch is
``num_repeats`` passes over the training videos (``DatasetRepeater``).

Checkpoints (``<log_dir>/checkpoint.pth.tar``, written atomically by rank 0) are taken every
``checkpoint_freq`` epochs and at the end, with the optimiser, scheduler and random states of every
process, the epoch and the step within it. Resuming from one is exact: on the CPU with
``num_workers: 0`` a resumed run reproduces the parameters of the uninterrupted run (to float
rounding); with DataLoader workers a run resumed mid-epoch sees different augmentations for the rest
of that epoch (worker generators are not checkpointed). An original ``.pth.tar`` is fine-tuned
instead: its weights and, where they fit, its optimiser states are loaded, and training starts at
epoch 0 of this config's schedule with this config's learning rates.

Ctrl-C stops without writing a checkpoint (the last complete one stays). A non-finite loss stops
with :class:`~fomm.training.errors.NonFiniteLossError` naming the term and the step, before any
parameter update and without touching the last good checkpoint.

Scale-out: the same run under ``torchrun --nproc_per_node N`` trains each process on its own shard
of every epoch with ``DistributedDataParallel`` (:mod:`fomm.training.distributed`), batch norm
synchronised across processes, rank 0 alone logging and checkpointing. The effective batch size is
``train_params.batch_size x world size`` and an epoch has ``world size`` times fewer steps.

Arithmetic (:mod:`fomm.training.precision`): ``mixed_precision: no | auto | bf16 | fp16``. Under
bf16/fp16 the networks' forward passes run under autocast (fp16 with a gradient scaler, CUDA only;
bf16 on CUDA and on CPUs, fast with AMX or AVX512-BF16), while the parameters, Adam and every loss
stay float32; ``auto`` picks per device by measurement. On the CPU (and under autocast on CUDA)
the networks, the VGG19 of the perceptual loss and the batches are channels-last; checkpoints are
written contiguous all the same (:mod:`fomm.training.memory_format`). Adam runs its fused kernels
on the CPU and CUDA.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import time
import warnings
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import imageio.v3 as iio
import torch
import yaml
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from ..checkpoint import CheckpointData, load_state_dicts, read_checkpoint, save_checkpoint
from ..data import DatasetRepeater, FramesDataset
from ..device import resolve_device
from ..errors import ConfigError
from ..files import FolderLock, atomic_path, write_text_atomic
from ..models import MotionModel, build_model
from ..models.registry import family_of
from ..models.family import OptimizerPlan, TrainingPlan
from ..models.vgg import load_vgg19_weights
from ..visualize import training_grid
from .distributed import (
    DistributedContext,
    EpochSampler,
    all_gather_objects,
    all_reduce_mean,
    convert_batchnorm,
    init_distributed,
)
from .errors import NonFiniteLossError, TrainingError
from .memory_format import contiguous_state_dicts, contiguous_tensors, match_state_layouts
from .precision import TrainingPrecision, frozen_feature_network, resolve_precision
from .rng import capture_rng_state, derive_seed, reseed_dataset, restore_rng_state, seed_everything

__all__ = ["ADAM_BETAS", "CHECKPOINT_NAME", "TrainResult", "Trainer"]

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pth.tar"
ADAM_BETAS = (0.5, 0.999)
#: The epoch index of the seed of the training randomness (equivariance warps), far from any real
#: epoch so that it never equals a dataset's per-epoch seed.
_TRAINING_STREAM = 2**31 - 1
#: Devices with fused Adam kernels.
_FUSED_ADAM_DEVICES = ("cpu", "cuda")


@dataclass
class TrainResult:
    """What a :meth:`Trainer.train` call did. ``epoch`` counts finished epochs; ``history`` has
    one dict of loss values (averaged over processes) per step of this call."""

    epoch: int
    step_in_epoch: int
    global_step: int
    steps_this_run: int
    checkpoint: Optional[Path]
    interrupted: bool = False
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(self.steps_this_run, 1)


class Trainer:
    """Training of one config, from scratch or from a checkpoint; see the module doc.

    Args:
        config: the whole config of any family (its training section required;
            ``dataset_params`` unless ``dataset`` is given).
        log_dir: where the checkpoint, TensorBoard events, visualisations and a config copy go.
        device: ``auto``, ``cpu``, ``cuda``, ... (under torchrun each process takes its GPU).
        checkpoint: resume from one of our checkpoints, or fine-tune from an original ``.pth.tar``
            (a path, or the file already read with ``read_checkpoint(path, config)``).
        seed: overrides the config's seed.
        max_steps: stop after this many steps of this call (a checkpoint is written then).
        dataset: a training dataset of ``{'source', 'driving'}`` dicts of ``(C, H, W)`` frames in
            [0, 1] instead of ``dataset_params``.
        vgg: a ready VGG19 feature network (``perceptual_backbone: vgg19``) instead of loading the
            ImageNet weights (tests and benchmarks).
        progress: show the tqdm progress bar (rank 0 only anyway).
        skip_bad: skip unreadable videos of ``dataset_params`` with a warning instead of stopping.
        channels_last: train with channels-last tensors (None: the device's default, see
            :func:`~fomm.training.precision.resolve_precision`); benchmarks compare both.
        stage: the family's training stage (``motion``; ``avd`` for a TPSMM or MRAA model's AVD
            network, trained on a model whose motion networks are trained already).
    """

    def __init__(self, config: Any, log_dir: str | Path, *, device: str = "auto",
                 checkpoint: Optional[str | Path | CheckpointData] = None, seed: Optional[int] = None,
                 max_steps: Optional[int] = None, dataset: Optional[Dataset] = None,
                 vgg: Optional[nn.Module] = None, progress: bool = True, skip_bad: bool = False,
                 channels_last: Optional[bool] = None, stage: str = "motion") -> None:
        self.config = config
        self.stage = stage
        self.log_dir = Path(log_dir)
        self.max_steps = max_steps
        self.skip_bad = skip_bad
        self.progress = progress
        self.ctx: DistributedContext = init_distributed(resolve_device(device))
        self.device = self.ctx.device
        self.checkpoint_path = self.log_dir / CHECKPOINT_NAME
        self.precision = self._resolve_precision(channels_last)

        self._given_vgg = vgg
        self.seed = config.train_params.seed if seed is None else seed
        seed_everything(self.seed)  # identical initial weights on every process
        self.model: MotionModel = build_model(config)
        if stage not in self.model.training_stages:
            raise ConfigError(f"a {type(self.model).__name__} trains in the stage(s) "
                              f"{', '.join(self.model.training_stages)}, not {stage!r}")
        self.start_epoch, self.start_step_in_epoch, self.global_step = 0, 0, 0
        resume_state: dict[str, Any] = {}
        if checkpoint is not None:
            resume_state = self._load_checkpoint(checkpoint)
        self._prepare_model()

        self.plan: TrainingPlan = family_of(self.model).training_plan(self.model, stage, self._perceptual_network)
        self.schedule = self.plan.schedule
        for name in self.plan.trains:  # the others stay frozen, in eval mode
            getattr(self.model, name).train().requires_grad_(True)
        self.objectives = {planned.name: self._wrap(planned.objective.to(self.device)) for planned in self.plan.stages}
        self.optimizers = self._optimizers()
        self.schedulers = {key: torch.optim.lr_scheduler.MultiStepLR(optimizer, list(self.schedule.epoch_milestones),
                                                                     gamma=0.1)
                           for key, optimizer in self.optimizers.items()}
        use_scaler = self.precision.needs_grad_scaler
        self.scalers = {planned.name: torch.amp.GradScaler("cuda", enabled=use_scaler) for planned in self.plan.stages}
        self._restore_training_state(resume_state)

        self.dataset = dataset if dataset is not None else self._build_dataset()
        self.sampler = EpochSampler(len(self.dataset), self.ctx.rank, self.ctx.world_size, seed=self.seed)
        self.steps_per_epoch = self.sampler.num_samples // self.schedule.batch_size
        if self.steps_per_epoch == 0:
            raise TrainingError(f"the training set ({len(self.dataset)} samples over {self.ctx.world_size} process(es)) "
                                f"is smaller than one batch of batch_size={self.schedule.batch_size}; "
                                f"lower batch_size or raise num_repeats")
        self._resume_rng = resume_state.get("rng_states")
        self._epoch = self.start_epoch
        self._saved_at: Optional[tuple[int, int]] = None
        # Training randomness (the equivariance warps) differs between processes; the weights above
        # were drawn before this, identical everywhere.
        torch.manual_seed(derive_seed(self.seed, _TRAINING_STREAM, self.ctx.rank))

    # -- setup ---------------------------------------------------------------------------------

    def _resolve_precision(self, channels_last: Optional[bool]) -> TrainingPrecision:
        """This run's arithmetic (``train_params.mixed_precision``; float32 for the small AVD
        network); under torchrun every process takes rank 0's choice (``auto`` measures, and
        processes must not differ)."""
        train_params = getattr(self.config, "train_params", None)
        if train_params is None:
            raise ConfigError("the config has no train_params section: it cannot be trained")
        mode = getattr(train_params, "mixed_precision", "no") if self.stage == "motion" else "no"
        precision = resolve_precision(mode, self.device, channels_last)
        return all_gather_objects(precision)[0]

    def _perceptual_network(self) -> nn.Module:
        """The frozen VGG19 of the perceptual loss, ready for this run's arithmetic."""
        vgg = self._given_vgg
        if vgg is None:
            vgg = load_vgg19_weights(getattr(self.config.train_params, "vgg19_weights", None))
        return frozen_feature_network(vgg, self.precision, self.device)

    def _prepare_model(self) -> None:
        self.model.to(self.device, memory_format=self.precision.memory_format)
        networks = self.model.built_networks()
        if self.ctx.is_distributed:
            for name in networks:
                setattr(self.model, name, convert_batchnorm(getattr(self.model, name), self.device))
        for name in networks:
            contiguous_state_dicts(getattr(self.model, name))
        self.model.eval()
        self.model.requires_grad_(False)

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {planned.key: _adam([parameter for name in planned.networks
                                    for parameter in getattr(self.model, name).parameters()],
                                   planned.lr, planned.weight_decay, self.device)
                for planned in self.plan.optimizers}

    def _wrap(self, module: nn.Module) -> nn.Module:
        if not self.ctx.is_distributed or not any(parameter.requires_grad for parameter in module.parameters()):
            return module
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        # Parameters a stage may leave without gradient (a FOMM generator without dense motion
        # ignores the keypoints; TPSMM's background predictor before bg_start): DDP must search.
        return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=True)

    def _build_dataset(self) -> Dataset:
        params = self.plan.dataset_params if self.plan.dataset_params is not None else \
            getattr(self.config, "dataset_params", None)
        if params is None:
            raise ConfigError("the config has no dataset_params section: there is no data to train on")
        if getattr(params, "compute_flow", False) and params.nearby_pair_ratio == 0:
            warnings.warn("loss_weights.flow_consistency > 0 but dataset_params.nearby_pair_ratio is 0: "
                          "no pair is nearby, so the flow-consistency loss stays 0", stacklevel=2)
        if params.frame_shape is None:  # the published TPSMM and MRAA configs leave it out
            params = params.model_copy(update={"frame_shape": self.model.frame_shape})
        dataset: Dataset = FramesDataset(params, is_train=True, skip_bad=self.skip_bad)
        if self.schedule.num_repeats > 1:
            dataset = DatasetRepeater(dataset, self.schedule.num_repeats)
        return dataset

    def _load_checkpoint(self, checkpoint: str | Path | CheckpointData) -> dict[str, Any]:
        data = checkpoint if isinstance(checkpoint, CheckpointData) else read_checkpoint(checkpoint, self.config)
        load_state_dicts(self.model, data)
        state = dict(data.training_state)
        if data.is_original or state.get("stage", "motion") != self.stage:
            what = f"the original checkpoint {data.path}" if data.is_original else f"{data.path} (stage " \
                f"{state.get('stage', 'motion')})"
            self._log(f"fine-tuning from {what} (its epoch {data.epoch}); training starts at epoch 0 of this "
                      f"{self.stage} stage")
            return {"original_optimizers": {key: value for key, value in state.items() if key.startswith("optimizer")}}
        self.start_epoch = int(state.get("epoch", 0))
        self.start_step_in_epoch = int(state.get("step_in_epoch", 0))
        self.global_step = int(state.get("global_step", 0))
        self._log(f"resuming from {data.path}: epoch {self.start_epoch}, step {self.start_step_in_epoch} of it, "
                  f"global step {self.global_step}")
        return state

    def _restore_training_state(self, state: dict[str, Any]) -> None:
        configured = {key: [group["fused"] for group in optimizer.param_groups]
                      for key, optimizer in self.optimizers.items()}
        self._load_training_state(state)
        for key, optimizer in self.optimizers.items():
            # A loaded state dict brings the saving run's kernel choice; this device's is kept.
            for group, fused in zip(optimizer.param_groups, configured[key]):
                group["fused"] = fused
            _fit_states_to_kernels(optimizer)

    def _load_training_state(self, state: dict[str, Any]) -> None:
        if "original_optimizers" in state:
            for key, saved in state["original_optimizers"].items():
                if key in self.optimizers and isinstance(saved, dict):
                    self._load_original_optimizer(key, saved)
            return
        for key, optimizer in self.optimizers.items():
            if key in state:
                optimizer.load_state_dict(state[key])
            if _scheduler_key(key) in state:
                self.schedulers[key].load_state_dict(state[_scheduler_key(key)])
        for name, scaler in self.scalers.items():
            if state.get(f"scaler_{name}"):
                scaler.load_state_dict(state[f"scaler_{name}"])

    def _load_original_optimizer(self, key: str, saved: dict) -> None:
        """Adam moments of an original checkpoint, when they fit; this config's learning rates."""
        optimizer = self.optimizers[key]
        configured = [dict(group) for group in optimizer.param_groups]
        try:
            optimizer.load_state_dict(saved)
        except (ValueError, KeyError, RuntimeError) as error:
            warnings.warn(f"optimizer state '{key}' in the checkpoint does not fit ({error}); starting it fresh",
                          stacklevel=2)
            return
        for group, fresh in zip(optimizer.param_groups, configured):
            group["lr"] = group["initial_lr"] = fresh["lr"]
            group["betas"], group["weight_decay"] = fresh["betas"], fresh["weight_decay"]

    # -- one step ------------------------------------------------------------------------------

    def _autocast(self) -> AbstractContextManager:
        return self.precision.autocast(self.device)

    def _frames(self, frames: Tensor) -> Tensor:
        """A ``(B, C, H, W)`` batch on the device, in the networks' memory format."""
        return frames.to(self.device, non_blocking=True).contiguous(memory_format=self.precision.memory_format)

    def train_step(self, batch: dict[str, Any]) -> tuple[dict[str, float], dict[str, Tensor]]:
        """One iteration: every stage of the plan in turn (FOMM: the generator and detector step,
        then, with a GAN, the discriminator's).

        Returns the loss values (averaged over processes) and the generated tensors. Raises
        :class:`NonFiniteLossError` before any update when a loss is not finite.
        """
        # initial and target: the frames of training on cross pairs (dataset_params.cross_pair_ratio).
        inputs = {key: self._frames(batch[key]) for key in ("source", "driving", "initial", "target") if key in batch}
        if batch.get("flow") is not None:
            inputs["flow"] = batch["flow"].to(self.device, non_blocking=True)
        if isinstance(batch.get("nearby"), Tensor):
            inputs["nearby"] = batch["nearby"].to(self.device, dtype=torch.bool)
        values: dict[str, float] = {}
        generated: dict[str, Tensor] = {}
        for planned in self.plan.stages:
            with self._autocast():
                losses, made = self.objectives[planned.name](inputs, self._epoch, generated)
            values.update(self._checked_values(losses))
            optimizers = [self._planned[key] for key in planned.optimizers]
            self._step(losses, optimizers, self.scalers[planned.name])
            generated.update({key: value.detach() for key, value in made.items()})
        return values, generated

    @property
    def _planned(self) -> dict[str, OptimizerPlan]:
        return {planned.key: planned for planned in self.plan.optimizers}

    def _step(self, losses: dict[str, Tensor], planned: list[OptimizerPlan], scaler: torch.amp.GradScaler) -> None:
        """Backward of the summed losses and one (scaled, clipped) step of the ``planned``
        optimisers that step at this epoch."""
        optimizers = [self.optimizers[plan.key] for plan in planned]
        for optimizer in optimizers:
            # Also drops what an earlier backward left: the generator loss reaches the discriminator.
            optimizer.zero_grad(set_to_none=True)
        scaler.scale(sum(loss.float() for loss in losses.values())).backward()
        stepping = [(plan, optimizer) for plan, optimizer in zip(planned, optimizers) if self._epoch >= plan.start_epoch]
        self._clip(stepping, scaler)
        for _, optimizer in stepping:
            scaler.step(optimizer)
        scaler.update()

    def _checked_values(self, losses: dict[str, Tensor]) -> dict[str, float]:
        """Loss values averaged over processes (one small all-reduce), checked to be finite on
        every process at once so that all of them stop together."""
        names = list(losses)
        if not names:
            raise ConfigError("every train_params.loss_weights entry is zero: nothing to train")
        stacked = all_reduce_mean(torch.stack([losses[name].detach().float() for name in names]))
        values = dict(zip(names, stacked.tolist()))
        for name, value in values.items():
            if not math.isfinite(value):
                raise NonFiniteLossError(name, value, self.global_step, self._epoch, self.checkpoint_path)
        return values

    def _clip(self, stepping: list[tuple[OptimizerPlan, torch.optim.Optimizer]], scaler: torch.amp.GradScaler) -> None:
        """The family's own clips (TPSMM: each listed network's largest gradient entry to 10),
        then ``grad_clip`` (ours: the norm of everything that steps)."""
        clips = [plan for plan, _ in stepping if plan.clipped]
        if not clips and self.schedule.grad_clip is None:
            return
        for _, optimizer in stepping:
            scaler.unscale_(optimizer)
        for plan in clips:
            for name in plan.clipped:
                torch.nn.utils.clip_grad_norm_(getattr(self.model, name).parameters(), plan.clip_max_entry,
                                               norm_type=math.inf)
        if self.schedule.grad_clip is not None:
            parameters = [p for _, optimizer in stepping for group in optimizer.param_groups for p in group["params"]
                          if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(parameters, self.schedule.grad_clip)

    # -- the loop ------------------------------------------------------------------------------

    def train(self) -> TrainResult:
        """Train until ``num_epochs`` (or ``max_steps`` of this call, or Ctrl-C)."""
        self._epoch = self.start_epoch
        result = TrainResult(epoch=self.start_epoch, step_in_epoch=self.start_step_in_epoch,
                             global_step=self.global_step, steps_this_run=0,
                             checkpoint=self.checkpoint_path if self.checkpoint_path.is_file() else None)
        # One run per log folder: two would overwrite each other's checkpoint.
        lock = FolderLock(self.log_dir, "training (fomm train)") if self.ctx.is_main else nullcontext()
        with lock:
            return self._train(result)

    def _train(self, result: TrainResult) -> TrainResult:
        writer = self._open_logs()
        progress = self._progress_bar()
        started = time.perf_counter()
        try:
            self._loop(result, writer, progress)
        except KeyboardInterrupt:
            result.interrupted = True
            kept = f"; the last one ({self.checkpoint_path}) is kept" if result.checkpoint else ""
            self._log(f"interrupted at global step {self.global_step}; no checkpoint written{kept}",
                      logging.WARNING)
        finally:
            result.seconds = time.perf_counter() - started
            if progress is not None:
                progress.close()
            if writer is not None:
                writer.close()
        return result

    def _loop(self, result: TrainResult, writer: Optional[SummaryWriter], progress: Optional[tqdm]) -> None:
        params = self.schedule
        epoch, skip = self.start_epoch, self.start_step_in_epoch
        if self._resume_rng is not None and skip == 0:
            self._restore_rng(self._resume_rng)  # at an epoch boundary: before anything draws
        generated: dict[str, Tensor] = {}
        batch: dict[str, Any] = {}
        while epoch < params.num_epochs:
            self._epoch = epoch
            self._log_learning_rates(writer, epoch)
            loader = self._epoch_loader(epoch, skip)
            if self._resume_rng is not None and skip > 0:
                self._restore_rng(self._resume_rng)  # mid-epoch: after the per-epoch reseed
            self._resume_rng = None
            step_in_epoch = skip
            for batch in loader:
                values, generated = self.train_step(batch)
                step_in_epoch += 1
                self.global_step += 1
                result.steps_this_run += 1
                result.history.append(values)
                self._log_step(writer, progress, values, epoch)
                if self._budget_spent(result):
                    break
            skip = 0
            if step_in_epoch >= self.steps_per_epoch:  # the epoch is complete
                self._advance_schedules()
                epoch += 1
                step_in_epoch = 0
                if epoch % params.checkpoint_freq == 0 or epoch == params.num_epochs:
                    self._save(epoch, 0, result)
                    self._visualise(writer, batch, generated, epoch)
            if self._budget_spent(result):
                if self._saved_at != (epoch, step_in_epoch):  # same decision on every rank
                    self._save(epoch, step_in_epoch, result)
                break
        self._epoch = epoch

    def _budget_spent(self, result: TrainResult) -> bool:
        return self.max_steps is not None and result.steps_this_run >= self.max_steps

    def _advance_schedules(self) -> None:
        with warnings.catch_warnings():
            # The discriminator's optimiser never steps without a GAN; its schedule still advances
            # so that turning the GAN on later finds the right learning rate.
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
            for scheduler in self.schedulers.values():
                scheduler.step()

    def _epoch_loader(self, epoch: int, skip: int) -> DataLoader:
        self.sampler.set_epoch(epoch, start=skip * self.schedule.batch_size)
        seed = derive_seed(self.seed, epoch, self.ctx.rank)
        reseed_dataset(self.dataset, seed)
        generator = torch.Generator()
        generator.manual_seed(seed)
        return DataLoader(self.dataset, batch_size=self.schedule.batch_size, sampler=self.sampler, drop_last=True,
                          num_workers=self.schedule.num_workers, pin_memory=self.device.type == "cuda",
                          generator=generator)

    # -- checkpoints and random states -----------------------------------------------------------

    def _save(self, epoch: int, step_in_epoch: int, result: TrainResult) -> None:
        rng_states = all_gather_objects(capture_rng_state(self.dataset))  # collective: every rank calls it
        self._saved_at = (epoch, step_in_epoch)
        result.epoch, result.step_in_epoch, result.global_step = epoch, step_in_epoch, self.global_step
        if not self.ctx.is_main:
            return
        self.model.epoch = epoch
        state: dict[str, Any] = {
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": self.global_step,
            "seed": self.seed,
            "world_size": self.ctx.world_size,
            "rng_states": rng_states,
            "stage": self.stage,
        }
        for key, optimizer in self.optimizers.items():
            # Contiguous, as the networks' state dicts: the file does not depend on the layout.
            state[key] = contiguous_tensors(optimizer.state_dict())
            state[_scheduler_key(key)] = self.schedulers[key].state_dict()
        for name, scaler in self.scalers.items():
            state[f"scaler_{name}"] = scaler.state_dict() if scaler.is_enabled() else {}
        save_checkpoint(self.checkpoint_path, self.model, state)
        result.checkpoint = self.checkpoint_path

    def _restore_rng(self, states: list) -> None:
        if len(states) != self.ctx.world_size:
            warnings.warn(f"the checkpoint was written by {len(states)} process(es), this run has "
                          f"{self.ctx.world_size}: random streams start afresh", stacklevel=2)
            return
        restore_rng_state(states[self.ctx.rank], self.dataset)

    # -- logging -------------------------------------------------------------------------------

    def _log(self, message: str, level: int = logging.INFO) -> None:
        """Log from rank 0 only: the other processes would repeat the same lines."""
        if self.ctx.is_main:
            logger.log(level, message)

    def _open_logs(self) -> Optional[SummaryWriter]:
        if not self.ctx.is_main:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.log_dir / "config.yaml", yaml.safe_dump(self.config.to_dict(), sort_keys=False))
        world = self.ctx.world_size
        self._log(f"training on {self.device} x {world} process(es); effective batch size "
                  f"{self.schedule.batch_size} x {world} = {self.schedule.batch_size * world}; "
                  f"{self.steps_per_epoch} steps per epoch; logs in {self.log_dir}")
        self._log(f"arithmetic: {self.precision.describe()}")
        return SummaryWriter(log_dir=str(self.log_dir))

    def _progress_bar(self) -> Optional[tqdm]:
        if not (self.ctx.is_main and self.progress):
            return None
        total = self.schedule.num_epochs * self.steps_per_epoch
        if self.max_steps is not None:
            total = min(total, self.global_step + self.max_steps)
        return tqdm(total=total, initial=self.global_step, unit="it", dynamic_ncols=True, file=sys.stderr)

    def _log_step(self, writer: Optional[SummaryWriter], progress: Optional[tqdm], values: dict[str, float],
                  epoch: int) -> None:
        if writer is not None:
            for name, value in values.items():
                writer.add_scalar(f"loss/{name}", value, self.global_step)
            writer.add_scalar("loss/total", sum(values.values()), self.global_step)
        if progress is not None:
            progress.set_description(f"epoch {epoch + 1}/{self.schedule.num_epochs}")
            progress.set_postfix({name: f"{value:.4g}" for name, value in values.items()}, refresh=False)
            progress.update(1)

    def _log_learning_rates(self, writer: Optional[SummaryWriter], epoch: int) -> None:
        if writer is None:
            return
        for name, optimizer in self.optimizers.items():
            writer.add_scalar(f"lr/{name}", optimizer.param_groups[0]["lr"], epoch)

    def _visualise(self, writer: Optional[SummaryWriter], batch: dict[str, Any], generated: dict[str, Tensor],
                   epoch: int) -> None:
        """The last batch of the epoch as a picture: ``<log_dir>/train-vis/epoch-NNNNN.png`` and
        TensorBoard."""
        if writer is None or "prediction" not in generated:  # the AVD stage makes no picture
            return
        vis = self.config.visualizer_params
        grid = training_grid(batch["source"], batch["driving"], generated["prediction"],
                             kp_source=generated.get("kp_source"), kp_driving=generated.get("kp_driving"),
                             deformed=generated.get("deformed"), occlusion_map=generated.get("occlusion_map"),
                             colormap=vis.colormap, kp_size=max(1, vis.kp_size * batch["source"].shape[-1] // 256),
                             draw_border=vis.draw_border)
        with atomic_path(self.log_dir / "train-vis" / f"epoch-{epoch:05d}.png") as temporary:
            iio.imwrite(temporary, grid)
        writer.add_image("train/visualisation", grid, epoch, dataformats="HWC")


def _scheduler_key(optimizer_key: str) -> str:
    """``scheduler_generator`` for ``optimizer_generator``; ``scheduler`` for ``optimizer``."""
    return "scheduler" + optimizer_key[len("optimizer"):]


def _adam(parameters: list[nn.Parameter], lr: float, weight_decay: float, device: torch.device) -> torch.optim.Adam:
    """Adam with the originals' betas; its fused kernel where this torch has one for ``device``: it
    updates all parameters in one pass (measured 6x faster than the per-parameter loop on the CPU),
    with the same float32 arithmetic."""
    if device.type in _FUSED_ADAM_DEVICES:
        try:
            return torch.optim.Adam(parameters, lr=lr, betas=ADAM_BETAS, weight_decay=weight_decay, fused=True)
        except RuntimeError:  # torch before 2.4 has no fused CPU kernel
            pass
    return torch.optim.Adam(parameters, lr=lr, betas=ADAM_BETAS, weight_decay=weight_decay)


def _fit_states_to_kernels(optimizer: torch.optim.Optimizer) -> None:
    """After ``load_state_dict``: moment tensors laid out like their parameters (channels-last or
    not) and, for fused groups, step counters as float32 tensors on the parameter's device, which
    the fused kernels require (a state saved by the per-parameter loop has them on the CPU)."""
    match_state_layouts(optimizer)
    for group in optimizer.param_groups:
        if not group.get("fused"):
            continue
        for parameter in group["params"]:
            state = optimizer.state.get(parameter)
            if state and "step" in state:
                state["step"] = torch.as_tensor(state["step"], dtype=torch.float32).to(parameter.device)
