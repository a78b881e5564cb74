"""The training loop: ``fomm train --config CFG [--checkpoint CKPT] [--log-dir DIR] ...``.

One iteration, as the original ``train.py``: the keypoint detector and generator take an Adam step
on the generator losses (perceptual pyramid, equivariance, generator GAN and feature matching; ours:
optical-flow consistency, :mod:`fomm.flow`, which turns on ``dataset_params.compute_flow``), then,
when ``loss_weights.generator_gan != 0``, the discriminator takes an Adam step on the least-squares
discriminator loss. Learning rates follow ``MultiStepLR(epoch_milestones, gamma=0.1)`` per epoch;
an epoch is ``num_repeats`` passes over the training videos (``DatasetRepeater``).

Checkpoints (``<log-dir>/checkpoint.pth.tar``, written atomically by rank 0) are taken every
``checkpoint_freq`` epochs and at the end, with the optimiser, scheduler and RNG states of every
process, the epoch and the step within it. ``--checkpoint`` resumes exactly: on the CPU with
``num_workers: 0`` a resumed run reproduces the parameters of the uninterrupted run (to float
rounding); with DataLoader workers a run resumed mid-epoch sees different augmentations for the rest
of that epoch (worker RNGs are not checkpointed). An original ``.pth.tar`` is fine-tuned instead:
its weights and, where they fit, its optimiser states are loaded, and training starts at epoch 0
of this config's schedule with this config's learning rates.

Ctrl-C stops without writing a checkpoint (the last complete one stays). A non-finite loss stops
with :class:`NonFiniteLossError` naming the loss term and the step, before any parameter update and
without touching the last good checkpoint.

Scale-out: run the same command under ``torchrun --nproc_per_node N`` (for example
``torchrun --nproc_per_node 2 -m fomm.train --config CFG``). Each process then trains on its own
shard of every epoch with ``DistributedDataParallel`` (NCCL on GPUs, gloo on the CPU), batch norm
synchronised across processes (:mod:`fomm.distributed`), and rank 0 alone logs and checkpoints.
**The effective batch size is ``train_params.batch_size x world size``** (``batch_size`` is per
process) and an epoch has ``world size`` times fewer steps; it is printed at start.

Mixed precision (``mixed_precision: bf16 | fp16``) applies on CUDA only (autocast; fp16 with a
gradient scaler); the loss arithmetic itself stays in float32.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from .checkpoint import load_state_dicts, read_checkpoint, save_checkpoint
from .config import FommConfig, LossWeights, TrainParams, load_config
from .device import resolve_device
from .distributed import (
    DistributedContext,
    EpochSampler,
    all_gather_objects,
    all_reduce_mean,
    cleanup_distributed,
    convert_batchnorm,
    init_distributed,
)
from .losses import flow_consistency_loss
from .geometry import RandomWarp
from .losses import (
    PerceptualLoss,
    discriminator_gan_loss,
    equivariance_jacobian_loss,
    equivariance_value_loss,
    feature_matching_loss,
    generator_gan_loss,
)
from .models import FommModel, ImagePyramid, Keypoints, build_model
from .models.vgg import load_vgg19_weights

__all__ = [
    "CHECKPOINT_NAME",
    "TrainingError",
    "NonFiniteLossError",
    "TrainResult",
    "GeneratorFullModel",
    "DiscriminatorFullModel",
    "Trainer",
    "add_train_arguments",
    "run_train",
]

CHECKPOINT_NAME = "checkpoint.pth.tar"
ADAM_BETAS = (0.5, 0.999)


class TrainingError(RuntimeError):
    """Training cannot go on (bad setup or diverged)."""


class NonFiniteLossError(TrainingError):
    """A loss term became NaN or infinite; ``term`` and ``step`` say which and when."""

    def __init__(self, term: str, value: float, step: int, epoch: int, checkpoint: Optional[Path]) -> None:
        kept = (f"the last good checkpoint {checkpoint} was kept" if checkpoint is not None and checkpoint.is_file()
                else "no checkpoint was written")
        super().__init__(f"loss term '{term}' is {value} at step {step} (epoch {epoch}); training stopped before "
                         f"updating the parameters and {kept}. Lower the learning rates, set "
                         f"train_params.grad_clip, or check the data.")
        self.term, self.value, self.step, self.epoch = term, value, step, epoch


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


# --------------------------------------------------------------------------------------------
# the two "full models" (networks + losses), each a single forward for DistributedDataParallel


class GeneratorFullModel(nn.Module):
    """Keypoint detector + generator + their losses in one forward.

    ``forward(source, driving)`` with ``(B, C, H, W)`` batches returns ``(losses, generated)``:
    weighted scalar losses keyed by the original names (``perceptual``, ``gen_gan``,
    ``feature_matching``, ``equivariance_value``, ``equivariance_jacobian``; ours:
    ``flow_consistency``, see :mod:`fomm.flow`) and a dict of tensors
    (``prediction``, ``deformed``, ``occlusion_map``, ``kp_source``, ``kp_driving`` values) for the
    discriminator step and visualisation. The discriminator is used but not registered as a
    submodule: its gradients from this loss are discarded (as the original's), and keeping it out
    means DDP does not synchronise them.
    """

    def __init__(self, kp_detector: nn.Module, generator: nn.Module, discriminator: nn.Module,
                 train_params: TrainParams, num_channels: int, vgg: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.kp_detector = kp_detector
        self.generator = generator
        self._discriminator = [discriminator]  # a list hides it from nn.Module registration
        self.weights: LossWeights = train_params.loss_weights
        self.transform_params = train_params.transform_params
        self.pyramid = ImagePyramid(train_params.scales, num_channels)
        self.perceptual = PerceptualLoss(self.weights.perceptual, train_params.perceptual_backbone, vgg)
        weights = self.weights
        if (weights.equivariance_value or weights.equivariance_jacobian) and self.transform_params is None:
            raise TrainingError("equivariance losses need train_params.transform_params (sigma_affine, ...)")

    @property
    def discriminator(self) -> nn.Module:
        return self._discriminator[0]

    def forward(self, source: Tensor, driving: Tensor, flow: Optional[Tensor] = None,
                nearby: Optional[Tensor] = None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """``flow`` ``(B, 2, H, W)`` (source -> driving optical flow, normalised units) and
        ``nearby`` ``(B,)`` bool are needed by the flow-consistency loss only."""
        weights = self.weights
        source_detection = self.kp_detector.detect(source)
        kp_source = source_detection.keypoints
        kp_driving = self.kp_detector(driving)
        output = self.generator(source, kp_source=kp_source, kp_driving=kp_driving)
        losses: dict[str, Tensor] = {}
        pyramid_real = self.pyramid(driving)
        pyramid_fake = self.pyramid(output.prediction)

        if self.perceptual.enabled:
            losses["perceptual"] = self.perceptual(_float_dict(pyramid_fake), _float_dict(pyramid_real))

        if weights.generator_gan != 0:
            kp_condition = Keypoints(kp_driving.value.detach())
            fake = self.discriminator(pyramid_fake, kp=kp_condition)
            real = self.discriminator(pyramid_real, kp=kp_condition)
            losses["gen_gan"] = weights.generator_gan * generator_gan_loss(_float_disc(fake))
            if sum(weights.feature_matching) != 0:
                losses["feature_matching"] = feature_matching_loss(_float_disc(real), _float_disc(fake),
                                                                   weights.feature_matching)

        if weights.equivariance_value != 0 or weights.equivariance_jacobian != 0:
            params = self.transform_params
            assert params is not None
            transform = RandomWarp(driving.shape[0], params.sigma_affine, params.sigma_tps, params.points_tps,
                                   device=driving.device)
            transformed_kp = self.kp_detector(transform.transform_frame(driving))
            # The chain-rule jacobian and the 2x2 inverse are done in float32 even under autocast.
            with _autocast_off(driving.device):
                kp_float, transformed_float = _float_kp(kp_driving), _float_kp(transformed_kp)
                if weights.equivariance_value != 0:
                    losses["equivariance_value"] = weights.equivariance_value * equivariance_value_loss(
                        kp_float, transformed_float, transform)
                if weights.equivariance_jacobian != 0:
                    losses["equivariance_jacobian"] = weights.equivariance_jacobian * equivariance_jacobian_loss(
                        kp_float, transformed_float, transform)

        if weights.flow_consistency != 0:
            if flow is None:
                raise TrainingError("loss_weights.flow_consistency needs batches with 'flow' (dataset_params "
                                    "compute_flow, set automatically for dataset_params datasets)")
            with _autocast_off(driving.device):
                losses["flow_consistency"] = weights.flow_consistency * flow_consistency_loss(
                    kp_source.float(), source_detection.heatmap.float(), kp_driving.float(), flow.float(), mask=nearby)

        generated = {"prediction": output.prediction, "kp_source": kp_source.value, "kp_driving": kp_driving.value}
        if output.deformed is not None:
            generated["deformed"] = output.deformed
        if output.occlusion_map is not None:
            generated["occlusion_map"] = output.occlusion_map
        return losses, generated


class DiscriminatorFullModel(nn.Module):
    """Discriminator + its least-squares loss: ``forward(driving, prediction, kp_driving)`` with the
    prediction and the ``(B, K, 2)`` driving keypoints detached; returns ``{'disc_gan': loss}``."""

    def __init__(self, discriminator: nn.Module, train_params: TrainParams, num_channels: int) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.weight = train_params.loss_weights.discriminator_gan
        self.pyramid = ImagePyramid(train_params.scales, num_channels)

    def forward(self, driving: Tensor, prediction: Tensor, kp_driving: Tensor) -> dict[str, Tensor]:
        kp_condition = Keypoints(kp_driving.detach())
        real = self.discriminator(self.pyramid(driving), kp=kp_condition)
        fake = self.discriminator(self.pyramid(prediction.detach()), kp=kp_condition)
        return {"disc_gan": self.weight * discriminator_gan_loss(_float_disc(real), _float_disc(fake))}


def _float_dict(values: dict[str, Tensor]) -> dict[str, Tensor]:
    return {key: value.float() for key, value in values.items()}


def _float_disc(output):
    output.prediction_maps = {key: value.float() for key, value in output.prediction_maps.items()}
    output.feature_maps = {key: [value.float() for value in maps] for key, maps in output.feature_maps.items()}
    return output


def _float_kp(kp: Keypoints) -> Keypoints:
    return Keypoints(kp.value.float(), None if kp.jacobian is None else kp.jacobian.float())


def _autocast_off(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", enabled=False)
    return nullcontext()


# --------------------------------------------------------------------------------------------
# the trainer


class Trainer:
    """Training of one config, from scratch or from a checkpoint; see the module doc.

    Args:
        config: the whole config (``train_params`` required; ``dataset_params`` unless ``dataset``
            is given).
        log_dir: where the checkpoint, TensorBoard events, visualisations and a config copy go.
        device: ``auto``, ``cpu``, ``cuda``, ... (under torchrun each process takes its GPU).
        checkpoint: resume from one of our checkpoints, or fine-tune from an original ``.pth.tar``.
        seed: overrides ``train_params.seed``.
        max_steps: stop after this many steps of this call (a checkpoint is written then).
        dataset: a training dataset of ``{'source', 'driving'}`` dicts instead of ``dataset_params``.
        vgg: a ready VGG19 feature network (``perceptual_backbone: vgg19``) instead of loading the
            ImageNet weights (tests and benchmarks).
        progress: show the tqdm progress bar (rank 0 only anyway).
    """

    def __init__(self, config: FommConfig, log_dir: str | Path, *, device: str = "auto",
                 checkpoint: Optional[str | Path] = None, seed: Optional[int] = None,
                 max_steps: Optional[int] = None, dataset: Optional[Dataset] = None,
                 vgg: Optional[nn.Module] = None, progress: bool = True, skip_bad: bool = False) -> None:
        if config.train_params is None:
            raise TrainingError("the config has no train_params section")
        self.config = config
        self.params: TrainParams = config.train_params
        self.log_dir = Path(log_dir)
        self.max_steps = max_steps
        self.skip_bad = skip_bad
        self.progress = progress
        self.seed = self.params.seed if seed is None else seed
        self.ctx: DistributedContext = init_distributed(resolve_device(device))
        self.device = self.ctx.device
        self.checkpoint_path = self.log_dir / CHECKPOINT_NAME

        _seed_everything(self.seed)  # identical initial weights on every process
        self.model: FommModel = build_model(config)
        self.start_epoch, self.start_step_in_epoch, self.global_step = 0, 0, 0
        resume_state: dict[str, Any] = {}
        if checkpoint is not None:
            resume_state = self._load_checkpoint(Path(checkpoint))
        self.model.to(self.device)
        if self.ctx.is_distributed:
            for name in ("kp_detector", "generator", "discriminator"):
                setattr(self.model, name, convert_batchnorm(getattr(self.model, name), self.device))
        self.model.train()

        self.amp_dtype = self._amp_dtype()
        self.train_discriminator = self.params.loss_weights.generator_gan != 0
        num_channels = config.model_params.common_params.num_channels
        if self.params.perceptual_backbone == "vgg19" and sum(self.params.loss_weights.perceptual) != 0 and vgg is None:
            vgg = load_vgg19_weights(self.params.vgg19_weights)
        generator_full = GeneratorFullModel(self.model.kp_detector, self.model.generator, self.model.discriminator,
                                            self.params, num_channels, vgg).to(self.device)
        discriminator_full = DiscriminatorFullModel(self.model.discriminator, self.params, num_channels).to(self.device)
        self.generator_full: nn.Module = self._wrap(generator_full)
        self.discriminator_full: nn.Module = self._wrap(discriminator_full) if self.train_discriminator else discriminator_full

        self.optimizers = {
            "generator": torch.optim.Adam(self.model.generator.parameters(), lr=self.params.lr_generator, betas=ADAM_BETAS),
            "kp_detector": torch.optim.Adam(self.model.kp_detector.parameters(), lr=self.params.lr_kp_detector,
                                            betas=ADAM_BETAS),
            "discriminator": torch.optim.Adam(self.model.discriminator.parameters(), lr=self.params.lr_discriminator,
                                              betas=ADAM_BETAS),
        }
        self.schedulers = {name: torch.optim.lr_scheduler.MultiStepLR(optimizer, self.params.epoch_milestones, gamma=0.1)
                           for name, optimizer in self.optimizers.items()}
        use_scaler = self.amp_dtype == torch.float16
        self.scalers = {"generator": torch.amp.GradScaler("cuda", enabled=use_scaler),
                        "discriminator": torch.amp.GradScaler("cuda", enabled=use_scaler)}
        self._restore_training_state(resume_state)

        self.dataset = dataset if dataset is not None else self._build_dataset()
        self.sampler = EpochSampler(len(self.dataset), self.ctx.rank, self.ctx.world_size, seed=self.seed)
        self.steps_per_epoch = self.sampler.num_samples // self.params.batch_size
        if self.steps_per_epoch == 0:
            raise TrainingError(f"the training set ({len(self.dataset)} samples over {self.ctx.world_size} process(es)) "
                                f"is smaller than one batch of {self.params.batch_size}; lower batch_size or raise "
                                f"num_repeats")
        self._resume_rng = resume_state.get("rng_states")
        self._epoch = self.start_epoch
        self._saved_at: Optional[tuple[int, int]] = None
        # Training randomness (the equivariance warps) differs between processes; the weights above
        # were drawn before this, identical everywhere.
        torch.manual_seed(_derive_seed(self.seed, 2**31 - 1, self.ctx.rank))

    # -- setup ---------------------------------------------------------------------------------

    def _amp_dtype(self) -> Optional[torch.dtype]:
        mode = self.params.mixed_precision
        if mode == "no":
            return None
        if self.device.type != "cuda":
            self._print(f"mixed_precision: {mode} applies on CUDA only; training in float32 on {self.device}")
            return None
        if mode == "bf16" and not torch.cuda.is_bf16_supported():
            raise TrainingError("mixed_precision: bf16 asked for, but this GPU does not support bfloat16; use fp16")
        return torch.bfloat16 if mode == "bf16" else torch.float16

    def _wrap(self, module: nn.Module) -> nn.Module:
        if not self.ctx.is_distributed:
            return module
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        # Without a dense-motion network the generator ignores the keypoints, so the detector may
        # get no gradient at all; only then pay for DDP's search for unused parameters.
        unused = self.config.model_params.generator_params.dense_motion_params is None
        return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=unused)

    def _build_dataset(self) -> Dataset:
        from .data import DatasetRepeater, FramesDataset

        if self.config.dataset_params is None:
            raise TrainingError("the config has no dataset_params section (and no dataset was given)")
        params = self.config.dataset_params
        if self.params.loss_weights.flow_consistency != 0:
            # The flow-consistency loss needs the source -> driving optical flow from the data workers.
            params = params.model_copy(update={"compute_flow": True})
            if params.nearby_pair_ratio == 0:
                warnings.warn("loss_weights.flow_consistency > 0 but dataset_params.nearby_pair_ratio is 0: "
                              "no pair is nearby, so the flow-consistency loss stays 0", stacklevel=2)
        dataset: Dataset = FramesDataset(params, is_train=True, skip_bad=self.skip_bad)
        if self.params.num_repeats > 1:
            dataset = DatasetRepeater(dataset, self.params.num_repeats)
        return dataset

    def _load_checkpoint(self, path: Path) -> dict[str, Any]:
        data = read_checkpoint(path, self.config)
        load_state_dicts(self.model, data)
        if data.is_original:
            self._print(f"fine-tuning from the original checkpoint {path} (its epoch {data.epoch}); "
                        f"training starts at epoch 0 of this config")
            return {"original_optimizers": {name: data.training_state.get(f"optimizer_{name}")
                                            for name in ("generator", "kp_detector", "discriminator")}}
        state = dict(data.training_state)
        self.start_epoch = int(state.get("epoch", 0))
        self.start_step_in_epoch = int(state.get("step_in_epoch", 0))
        self.global_step = int(state.get("global_step", 0))
        self._print(f"resuming from {path}: epoch {self.start_epoch}, step {self.start_step_in_epoch} of it, "
                    f"global step {self.global_step}")
        return state

    def _restore_training_state(self, state: dict[str, Any]) -> None:
        if "original_optimizers" in state:
            for name, saved in state["original_optimizers"].items():
                if saved is not None:
                    self._load_original_optimizer(name, saved)
            return
        for name, optimizer in self.optimizers.items():
            if f"optimizer_{name}" in state:
                optimizer.load_state_dict(state[f"optimizer_{name}"])
            if f"scheduler_{name}" in state:
                self.schedulers[name].load_state_dict(state[f"scheduler_{name}"])
        for name, scaler in self.scalers.items():
            if state.get(f"scaler_{name}"):
                scaler.load_state_dict(state[f"scaler_{name}"])

    def _load_original_optimizer(self, name: str, saved: dict) -> None:
        """Adam moments of an original checkpoint, when they fit; this config's learning rates."""
        optimizer = self.optimizers[name]
        configured = [dict(group) for group in optimizer.param_groups]
        try:
            optimizer.load_state_dict(saved)
        except (ValueError, KeyError, RuntimeError) as error:
            warnings.warn(f"optimizer state of '{name}' in the original checkpoint does not fit ({error}); "
                          f"starting it fresh", stacklevel=2)
            return
        for group, fresh in zip(optimizer.param_groups, configured):
            group["lr"] = group["initial_lr"] = fresh["lr"]
            group["betas"] = fresh["betas"]

    # -- one step ------------------------------------------------------------------------------

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train_step(self, batch: dict[str, Any]) -> tuple[dict[str, float], dict[str, Tensor]]:
        """One generator (+ kp detector) step and, with a GAN, one discriminator step.

        Returns the loss values (averaged over processes) and the generated tensors. Raises
        :class:`NonFiniteLossError` before any update when a loss is not finite.
        """
        source = batch["source"].to(self.device, non_blocking=True)
        driving = batch["driving"].to(self.device, non_blocking=True)
        flow, nearby = batch.get("flow"), batch.get("nearby")
        if flow is not None:
            flow = flow.to(self.device, non_blocking=True)
        if isinstance(nearby, Tensor):
            nearby = nearby.to(self.device, dtype=torch.bool)
        with self._autocast():
            losses, generated = self.generator_full(source, driving, flow, nearby)
        values = self._checked_values(losses)
        total = sum(loss.float() for loss in losses.values())

        generator_opts = (self.optimizers["generator"], self.optimizers["kp_detector"])
        for optimizer in generator_opts:
            optimizer.zero_grad(set_to_none=True)
        scaler = self.scalers["generator"]
        scaler.scale(total).backward()
        self._clip(generator_opts, scaler)
        for optimizer in generator_opts:
            scaler.step(optimizer)
        scaler.update()

        if self.train_discriminator:
            optimizer = self.optimizers["discriminator"]
            optimizer.zero_grad(set_to_none=True)  # drops the gradients the generator loss left
            with self._autocast():
                disc_losses = self.discriminator_full(driving, generated["prediction"].detach(),
                                                      generated["kp_driving"].detach())
            values.update(self._checked_values(disc_losses))
            scaler = self.scalers["discriminator"]
            scaler.scale(sum(loss.float() for loss in disc_losses.values())).backward()
            self._clip((optimizer,), scaler)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
        return values, generated

    def _checked_values(self, losses: dict[str, Tensor]) -> dict[str, float]:
        """Loss values averaged over processes (one small all-reduce), checked to be finite on
        every process at once so that all of them stop together."""
        names = list(losses)
        if not names:
            raise TrainingError("every loss weight is zero: nothing to train")
        stacked = all_reduce_mean(torch.stack([losses[name].detach().float() for name in names]))
        values = dict(zip(names, stacked.tolist()))
        for name, value in values.items():
            if not math.isfinite(value):
                raise NonFiniteLossError(name, value, self.global_step, self._epoch, self.checkpoint_path)
        return values

    def _clip(self, optimizers, scaler) -> None:
        if self.params.grad_clip is None:
            return
        parameters = []
        for optimizer in optimizers:
            scaler.unscale_(optimizer)
            parameters += [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(parameters, self.params.grad_clip)

    # -- the loop ------------------------------------------------------------------------------

    def train(self) -> TrainResult:
        """Train until ``num_epochs`` (or ``max_steps`` of this call, or Ctrl-C)."""
        self._epoch = self.start_epoch
        result = TrainResult(epoch=self.start_epoch, step_in_epoch=self.start_step_in_epoch,
                             global_step=self.global_step, steps_this_run=0,
                             checkpoint=self.checkpoint_path if self.checkpoint_path.is_file() else None)
        writer = self._open_logs()
        progress = self._progress_bar()
        started = time.perf_counter()
        try:
            self._loop(result, writer, progress)
        except KeyboardInterrupt:
            result.interrupted = True
            self._print(f"\ninterrupted at global step {self.global_step}; no checkpoint written"
                        + (f", the last one ({self.checkpoint_path}) is kept" if result.checkpoint else ""))
        finally:
            result.seconds = time.perf_counter() - started
            if progress is not None:
                progress.close()
            if writer is not None:
                writer.close()
        return result

    def _loop(self, result: TrainResult, writer, progress) -> None:
        params = self.params
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
                if self.max_steps is not None and result.steps_this_run >= self.max_steps:
                    break
            skip = 0
            if step_in_epoch >= self.steps_per_epoch:  # the epoch is complete
                with warnings.catch_warnings():
                    # The discriminator's optimiser never steps without a GAN; its schedule still
                    # advances so that turning the GAN on later finds the right learning rate.
                    warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
                    for scheduler in self.schedulers.values():
                        scheduler.step()
                epoch += 1
                step_in_epoch = 0
                if epoch % params.checkpoint_freq == 0 or epoch == params.num_epochs:
                    self._save(epoch, 0, result)
                    self._visualise(writer, batch, generated, epoch)
            if self.max_steps is not None and result.steps_this_run >= self.max_steps:
                if self._saved_at != (epoch, step_in_epoch):  # same decision on every rank
                    self._save(epoch, step_in_epoch, result)
                break
        self._epoch = epoch

    def _epoch_loader(self, epoch: int, skip: int) -> DataLoader:
        self.sampler.set_epoch(epoch, start=skip * self.params.batch_size)
        seed = _derive_seed(self.seed, epoch, self.ctx.rank)
        _reseed_dataset(self.dataset, seed)
        generator = torch.Generator()
        generator.manual_seed(seed)
        return DataLoader(self.dataset, batch_size=self.params.batch_size, sampler=self.sampler, drop_last=True,
                          num_workers=self.params.num_workers, pin_memory=self.device.type == "cuda",
                          generator=generator)

    # -- checkpoints and RNG ---------------------------------------------------------------------

    def _save(self, epoch: int, step_in_epoch: int, result: TrainResult) -> None:
        rng_states = all_gather_objects(_rng_state(self.dataset))  # collective: every rank calls it
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
        }
        for name, optimizer in self.optimizers.items():
            state[f"optimizer_{name}"] = optimizer.state_dict()
            state[f"scheduler_{name}"] = self.schedulers[name].state_dict()
        for name, scaler in self.scalers.items():
            state[f"scaler_{name}"] = scaler.state_dict() if scaler.is_enabled() else {}
        save_checkpoint(self.checkpoint_path, self.model, state)
        result.checkpoint = self.checkpoint_path

    def _restore_rng(self, states: list) -> None:
        if len(states) != self.ctx.world_size:
            warnings.warn(f"the checkpoint was written by {len(states)} process(es), this run has "
                          f"{self.ctx.world_size}: random streams start afresh", stacklevel=2)
            return
        _set_rng_state(states[self.ctx.rank], self.dataset)

    # -- logging -------------------------------------------------------------------------------

    def _print(self, message: str) -> None:
        if self.ctx.is_main:
            print(message, file=sys.stderr, flush=True)

    def _open_logs(self):
        if not self.ctx.is_main:
            return None
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.log_dir / "config.yaml").write_text(_config_yaml(self.config))
        world = self.ctx.world_size
        self._print(f"training on {self.device} x {world} process(es); effective batch size "
                    f"{self.params.batch_size} x {world} = {self.params.batch_size * world}; "
                    f"{self.steps_per_epoch} steps per epoch; logs in {self.log_dir}")
        return SummaryWriter(log_dir=str(self.log_dir))

    def _progress_bar(self):
        if not (self.ctx.is_main and self.progress):
            return None
        from tqdm import tqdm

        total = self.params.num_epochs * self.steps_per_epoch
        if self.max_steps is not None:
            total = min(total, self.global_step + self.max_steps)
        return tqdm(total=total, initial=self.global_step, unit="it", dynamic_ncols=True, file=sys.stderr)

    def _log_step(self, writer, progress, values: dict[str, float], epoch: int) -> None:
        if writer is not None:
            for name, value in values.items():
                writer.add_scalar(f"loss/{name}", value, self.global_step)
            writer.add_scalar("loss/total", sum(values.values()), self.global_step)
        if progress is not None:
            progress.set_description(f"epoch {epoch + 1}/{self.params.num_epochs}")
            progress.set_postfix({name: f"{value:.4g}" for name, value in values.items()}, refresh=False)
            progress.update(1)

    def _log_learning_rates(self, writer, epoch: int) -> None:
        if writer is None:
            return
        for name, optimizer in self.optimizers.items():
            writer.add_scalar(f"lr/{name}", optimizer.param_groups[0]["lr"], epoch)

    def _visualise(self, writer, batch: dict[str, Any], generated: dict[str, Tensor], epoch: int) -> None:
        if writer is None or not generated:
            return
        from .visualize import training_grid
        import imageio.v3 as iio

        vis = self.config.visualizer_params
        grid = training_grid(batch["source"], batch["driving"], generated["prediction"],
                             kp_source=generated.get("kp_source"), kp_driving=generated.get("kp_driving"),
                             deformed=generated.get("deformed"), occlusion_map=generated.get("occlusion_map"),
                             colormap=vis.colormap, kp_size=max(1, vis.kp_size * batch["source"].shape[-1] // 256),
                             draw_border=vis.draw_border)
        folder = self.log_dir / "train-vis"
        folder.mkdir(parents=True, exist_ok=True)
        iio.imwrite(folder / f"epoch-{epoch:05d}.png", grid)
        writer.add_image("train/visualisation", grid, epoch, dataformats="HWC")


# --------------------------------------------------------------------------------------------
# randomness


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _derive_seed(seed: int, epoch: int, rank: int) -> int:
    """A 62-bit seed per (run seed, epoch, rank): independent streams via numpy's SeedSequence."""
    state = np.random.SeedSequence([seed % 2**32, epoch, rank]).generate_state(2, np.uint32)
    return (int(state[0]) << 30) ^ int(state[1])


def _reseedable(dataset: Dataset):
    """The dataset (or the one a DatasetRepeater wraps) that owns a ``reseed`` method, or None."""
    seen = 0
    while dataset is not None and seen < 8:
        if hasattr(dataset, "reseed"):
            return dataset
        dataset = getattr(dataset, "dataset", None)
        seen += 1
    return None


def _reseed_dataset(dataset: Dataset, seed: int) -> None:
    owner = _reseedable(dataset)
    if owner is not None:
        owner.reseed(seed)
    # Reseed the process-wide streams used by datasets without their own generator.
    random.seed(seed)
    np.random.seed(seed % 2**32)


def _rng_state(dataset: Dataset) -> dict[str, Any]:
    """This process's random states, in types ``torch.load(weights_only=True)`` accepts."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None,
        "python": [version, list(internal), gauss],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached": float(cached)},
        "dataset": None,
    }
    owner = _reseedable(dataset)
    if owner is not None and hasattr(owner, "_rng"):
        # FramesDataset keeps a numpy Generator per process; its state holds 128-bit ints, kept as JSON.
        state["dataset"] = json.dumps(owner._rng().bit_generator.state)
    return state


def _set_rng_state(state: dict[str, Any], dataset: Dataset) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached"]))
    owner = _reseedable(dataset)
    if state.get("dataset") and owner is not None and hasattr(owner, "_rng"):
        owner._rng().bit_generator.state = json.loads(state["dataset"])


def _config_yaml(config: FommConfig) -> str:
    import yaml

    return yaml.safe_dump(config.to_dict(), sort_keys=False)


# --------------------------------------------------------------------------------------------
# command line


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``fomm train`` (for a subparser of ``fomm.cli``)."""
    parser.add_argument("--config", required=True, help="YAML config in the original layout")
    parser.add_argument("--checkpoint", default=None,
                        help="resume from our checkpoint, or fine-tune from an original .pth.tar")
    parser.add_argument("--log-dir", default=None,
                        help="output folder (default: the checkpoint's folder when resuming, else log/<config name>)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default: auto)")
    parser.add_argument("--seed", type=int, default=None, help="overrides train_params.seed")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="stop after this many steps of this run and checkpoint (tests, benchmarks)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads per process (default: torch's choice; 1 helps on a busy CPU)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip unreadable or too-short videos with a warning (default: stop with an error)")
    return parser


def run_train(args: argparse.Namespace) -> int:
    """``fomm train``: returns the exit status (0 done, 1 diverged or bad setup, 130 interrupted)."""
    config = load_config(args.config)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    log_dir = args.log_dir
    if log_dir is None:
        original = args.checkpoint is not None and read_checkpoint(args.checkpoint, config).is_original
        log_dir = (Path(args.checkpoint).parent if args.checkpoint is not None and not original
                   else Path("log") / Path(args.config).stem)
    try:
        trainer = Trainer(config, log_dir, device=args.device, checkpoint=args.checkpoint, seed=args.seed,
                          max_steps=args.max_steps, progress=not args.no_progress,
                          skip_bad=getattr(args, "skip_bad", False))
        result = trainer.train()
    except TrainingError as error:
        print(f"error: {error}", file=sys.stderr)
        cleanup_distributed()
        return 1
    cleanup_distributed()
    if result.interrupted:
        return 130
    if trainer.ctx.is_main:
        print(f"done: epoch {result.epoch}, global step {result.global_step}, "
              f"{result.seconds_per_step:.3f} s/step; checkpoint {result.checkpoint}", file=sys.stderr)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = add_train_arguments(argparse.ArgumentParser(prog="fomm train", description=__doc__.split("\n")[0]))
    return run_train(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
