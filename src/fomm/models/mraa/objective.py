"""The MRAA training objectives: the reconstruction stage and the AVD stage.

:class:`MraaObjective` is the original ``ReconstructionModel`` (the paper's training losses): the
source is moved to the driving frame's regions, the background by the background motion
predictor, and the losses are

* ``perceptual``: the reconstruction loss on an image pyramid (``train_params.scales``), VGG19
  features weighted by ``loss_weights.perceptual`` (:class:`fomm.models.losses.PerceptualLoss`);
* ``equivariance_shift``: regions found on a randomly warped driving frame (an affine plus
  thin-plate-spline :class:`fomm.geometry.RandomWarp`), mapped back through the warp, must be the
  driving frame's centres: ``mean |shift_D - T(shift_T)|``;
* ``equivariance_affine``: likewise for the affine frames by the chain rule,
  ``mean |I - A_D^-1 (dT(shift_T) A_T)|``, the product's axis flip reverted as the renderer does.

:class:`AvdObjective` is the original ``train_avd`` step: the AVD network rebuilds a driving
frame's regions from the pose of a randomly rescaled copy of them and the identity of a source
frame, ``lambda_shift * mean |shift - shift^| + lambda_affine * mean |A - A^|``.

Both return weighted scalars keyed by the original names, only those with a non-zero weight.
Under autocast the losses are computed in float32.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ...geometry import RandomWarp, coordinate_grid, inverse_2x2
from ..fomm.keypoints import Keypoints
from ..losses import PerceptualLoss, equivariance_value_loss
from ..blocks import ImagePyramid, at_least_fp32, full_precision
from ..family import OptimizerPlan, PairObjective, Schedule, TrainingPlan, TrainingStage, avd_training_plan
from ...config import TrainAvdParams
from .config import MraaTrainParams
from .model import MraaModel
from .regions import Regions
from .sampling import sample

__all__ = ["AvdObjective", "MraaObjective", "equivariance_affine_loss", "random_scale", "training_plan", "warp_frame"]


class MraaObjective(nn.Module):
    """Region predictor + background predictor + generator and their losses in one forward.

    ``forward(source, driving, epoch)`` with ``(B, C, H, W)`` batches in [0, 1] returns
    ``(losses, generated)``: the weighted losses (see the module docstring) and, for pictures,
    ``prediction``, ``deformed``, ``occlusion_map`` (when made), ``source_shift`` and
    ``driving_shift`` ``(B, K, 2)``, ``bg_params`` ``(B, 3, 3)`` and, with equivariance,
    ``transformed_frame``. ``epoch`` is accepted for the family interface of training; MRAA's
    objective does not change with it. The AVD network is not part of this stage.
    """

    def __init__(self, model: MraaModel, train_params: MraaTrainParams, vgg: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.region_predictor = model.region_predictor
        self.bg_predictor = model.bg_predictor
        self.generator = model.generator
        self.revert_axis_swap = model.config.model_params.revert_axis_swap
        self.weights = train_params.loss_weights
        self.transform_params = train_params.transform_params
        self.pyramid = ImagePyramid(train_params.scales, model.num_channels)
        self.perceptual = PerceptualLoss(self.weights.perceptual, train_params.perceptual_backbone, vgg)

    def forward(self, source: Tensor, driving: Tensor, epoch: int = 0) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        source_regions = self.region_predictor(source)
        driving_regions = self.region_predictor(driving)
        background = None
        if self.bg_predictor is not None:
            background = self.bg_predictor(source, driving)
        rendered = self.generator(source, source_regions, dataclasses.replace(driving_regions, background=background))
        prediction = at_least_fp32(rendered.prediction)

        losses: dict[str, Tensor] = {}
        generated: dict[str, Tensor] = {"prediction": prediction, "source_shift": source_regions.shift,
                                        "driving_shift": driving_regions.shift}
        if background is not None:
            generated["bg_params"] = background
        for key in ("deformed", "occlusion_map"):
            if getattr(rendered, key) is not None:
                generated[key] = at_least_fp32(getattr(rendered, key))

        if self.perceptual.enabled:
            with full_precision(driving):
                pyramid_real, pyramid_fake = self.pyramid(driving), self.pyramid(prediction)
            # The reconstruction loss, summed over the pyramid's scales and VGG19's layers.
            losses["perceptual"] = self.perceptual(pyramid_fake, pyramid_real)

        if self.weights.equivariance_shift or self.weights.equivariance_affine:
            equivariance, transformed_frame = self._equivariance_losses(driving, driving_regions)
            losses.update(equivariance)
            generated["transformed_frame"] = transformed_frame
        return losses, generated

    def _equivariance_losses(self, driving: Tensor, driving_regions: Regions) -> tuple[dict[str, Tensor], Tensor]:
        params = self.transform_params
        assert params is not None  # the config requires it with equivariance weights
        transform = RandomWarp(driving.shape[0], params.sigma_affine, params.sigma_tps, params.points_tps,
                               device=driving.device)
        transformed_frame = warp_frame(transform, driving)
        transformed = self.region_predictor(transformed_frame)
        losses: dict[str, Tensor] = {}
        # The warp's jacobian and the 2x2 inverse in float32 even under autocast.
        with full_precision(driving):
            if self.weights.equivariance_shift:
                losses["equivariance_shift"] = self.weights.equivariance_shift * equivariance_value_loss(
                    Keypoints(at_least_fp32(driving_regions.shift)), Keypoints(at_least_fp32(transformed.shift)),
                    transform)
            if self.weights.equivariance_affine:
                losses["equivariance_affine"] = self.weights.equivariance_affine * equivariance_affine_loss(
                    driving_regions, transformed, transform, self.revert_axis_swap)
        return losses, transformed_frame


def warp_frame(transform: RandomWarp, frame: Tensor) -> Tensor:
    """``(B, C, H, W)`` frames resampled at the warped pixel grid, with reflection padding and the
    family's ``align_corners=False`` (:mod:`.sampling`; ``RandomWarp.transform_frame`` samples with
    the package's ``align_corners=True``)."""
    batch, _, height, width = frame.shape
    grid = coordinate_grid(height, width, dtype=frame.dtype, device=frame.device).view(1, -1, 2)
    warped = transform.warp_coordinates(grid.expand(batch, -1, -1)).view(batch, height, width, 2)
    return sample(frame, warped, padding_mode="reflection")


def equivariance_affine_loss(driving: Regions, transformed: Regions, transform: RandomWarp,
                             revert_axis_swap: bool) -> Tensor:
    """``mean |I - A_D^-1 (dT(shift_T) A_T)|`` (unweighted), ``A_D`` the driving frame's affine
    frames and ``A_T``, ``shift_T`` those of its warped copy. With ``revert_axis_swap`` the product
    is first multiplied by the sign of its top-left entry (an SVD axis flip is no error)."""
    # The warp's jacobian comes from autograd: enabled here so that the loss can also be
    # evaluated under no_grad (validation), where it then carries no gradient to the networks.
    with torch.enable_grad():
        warp_jacobian = transform.jacobian(at_least_fp32(transformed.shift))
    if not torch.is_grad_enabled():
        warp_jacobian = warp_jacobian.detach()
    transformed_affine = torch.matmul(warp_jacobian, at_least_fp32(transformed.affine))
    value = torch.matmul(inverse_2x2(at_least_fp32(driving.affine)), transformed_affine)
    if revert_axis_swap:
        value = value * torch.sign(value[..., 0:1, 0:1])
    eye = torch.eye(2, dtype=value.dtype, device=value.device)
    return (eye - value).abs().mean()


class AvdObjective(nn.Module):
    """The AVD network and its loss (the original ``train_avd`` step).

    ``forward(source, driving)`` with ``(B, C, H, W)`` batches: the frozen region predictor (run in
    eval mode without gradients) describes both; the driving regions, rescaled by a random
    per-element factor in ``[1 - random_scale, 1 + random_scale]`` along x and y, are the pose;
    the source's are the identity. Returns ``(losses, generated)``: ``rec_shift`` and
    ``rec_affine`` weighted by ``lambda_shift`` / ``lambda_affine``, and the rebuilt regions'
    ``shift`` / ``affine`` with the targets ``driving_shift`` / ``driving_affine``.

    Only ``avd_network`` is a submodule (what trains); the region predictor is held aside.
    Departure: the original left the region predictor in training mode here, so its batch
    statistics drifted during this stage; it is frozen in eval mode instead.
    """

    def __init__(self, model: MraaModel, train_avd_params: TrainAvdParams) -> None:
        super().__init__()
        if model.avd_network is None:
            raise ValueError("the AVD stage needs an AVD network (model_params.avd_network_params)")
        self.avd_network = model.avd_network
        self._region_predictor = [model.region_predictor]  # a list hides it from nn.Module registration
        self.params = train_avd_params

    @property
    def region_predictor(self) -> nn.Module:
        return self._region_predictor[0]

    def forward(self, source: Tensor, driving: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        identity, target = self._frozen_regions(source, driving)
        pose = random_scale(target, self.params.random_scale)
        rebuilt = self.avd_network(identity, pose)
        losses = {
            "rec_shift": self.params.lambda_shift * (target.shift - rebuilt.shift).abs().mean(),
            "rec_affine": self.params.lambda_affine * (target.affine - rebuilt.affine).abs().mean(),
        }
        generated = {"shift": rebuilt.shift, "affine": rebuilt.affine,
                     "driving_shift": target.shift, "driving_affine": target.affine}
        return losses, generated

    def _frozen_regions(self, source: Tensor, driving: Tensor) -> tuple[Regions, Regions]:
        predictor = self.region_predictor
        was_training = predictor.training
        predictor.eval()
        try:
            with torch.no_grad():
                return predictor(source), predictor(driving)
        finally:
            predictor.train(was_training)


def random_scale(regions: Regions, scale: float, generator: Optional[torch.Generator] = None) -> Regions:
    """Regions stretched by a random diagonal ``diag(s_x, s_y)`` per batch element, ``s`` uniform in
    ``[1 - scale, 1 + scale]``: shifts and affine frames multiplied by it (the original's
    ``random_scale``, emulating objects of other proportions)."""
    batch = regions.shift.shape[0]
    factors = torch.rand(batch, 2, generator=generator) * (2 * scale) + (1 - scale)
    stretch = torch.diag_embed(factors).unsqueeze(1).to(regions.shift)
    return Regions(shift=torch.matmul(stretch, regions.shift.unsqueeze(-1)).squeeze(-1),
                   affine=torch.matmul(stretch, regions.affine))


def training_plan(model: MraaModel, stage: str, perceptual: Callable[[], Optional[nn.Module]]) -> TrainingPlan:
    """The original ``train.py`` (stage ``motion``): one Adam over the region predictor, the
    background predictor and the generator; or ``train_avd.py`` (stage ``avd``): the AVD network
    alone, the region predictor frozen."""
    config = model.config
    if stage == "avd":
        return avd_training_plan(model, lambda params: AvdObjective(model, params))
    if stage != "motion":
        raise ConfigError(f"MRAA models train in the stages motion and avd, not {stage!r}")
    params = config.train_params
    if params is None:
        raise ConfigError("the config has no train_params section: nothing says how to train")
    needs_vgg = params.perceptual_backbone == "vgg19" and sum(params.loss_weights.perceptual) != 0
    objective = PairObjective(MraaObjective(model, params, perceptual() if needs_vgg else None),
                              points={"source_shift": "kp_source", "driving_shift": "kp_driving"})
    networks = tuple(name for name in ("region_predictor", "bg_predictor", "generator")
                     if getattr(model, name) is not None)
    schedule = Schedule(num_epochs=params.num_epochs, batch_size=params.batch_size, num_repeats=params.num_repeats,
                        epoch_milestones=tuple(params.epoch_milestones), checkpoint_freq=params.checkpoint_freq,
                        num_workers=params.dataloader_workers, seed=params.seed)
    return TrainingPlan(schedule=schedule,
                        optimizers=(OptimizerPlan("optimizer_reconstruction", networks, params.lr),),
                        stages=(TrainingStage("motion", objective, ("optimizer_reconstruction",)),), trains=networks)
