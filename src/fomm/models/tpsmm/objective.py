"""TPSMM's training objectives (section 3.4 of the paper; the original ``GeneratorFullModel`` and
``train_avd.py``).

:class:`TpsmmObjective` is the first stage: the keypoint detector, dense motion, inpainting and
background networks trained together on (source, driving) frames of one video with

* ``perceptual``: the VGG19 perceptual loss on an image pyramid (``train_params.scales``),
* ``equivariance_value``: keypoints of a randomly TPS-warped driving frame, mapped back through the
  warp, must be the driving frame's keypoints,
* ``warp_loss``: the source's encoder maps, warped and masked, must match the driving frame's
  encoder maps masked the same way (it trains the motion only: both sides are cut from the graph
  except through the deformation),
* ``bg``: the background transforms source->driving and driving->source must compose to the
  identity (from epoch ``bg_start``, when the background predictor starts),

and transform dropout before ``dropout_epoch`` (:func:`dropout_probability`). Each loss is already
multiplied by its ``loss_weights`` weight, and only those with a non-zero weight are computed, so
the total is their plain sum.

:func:`avd_objective` is the second stage: the AVD network learns to restore driving keypoints
from randomly rescaled ones, given the source's.

Imported on its own (not from :mod:`fomm.models.tpsmm`) because it needs :mod:`fomm.models.losses`.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ..losses import PerceptualLoss
from ..blocks import ImagePyramid
from ..family import OptimizerPlan, PairObjective, Schedule, TrainingPlan, TrainingStage, avd_training_plan
from ...config import TrainAvdParams
from .config import TrainParams
from .model import TpsKeypoints, TpsmmModel, TpsRendered
from .tps import RandomTps

__all__ = ["AvdStage", "TpsmmObjective", "avd_objective", "dropout_probability", "random_scale", "training_plan"]


def dropout_probability(params: TrainParams, epoch: int) -> Optional[float]:
    """The transform-dropout probability of ``epoch`` (0-based), None from ``dropout_epoch`` on.

    It grows linearly from ``dropout_startp`` by ``dropout_maxp`` every ``dropout_inc_epoch``
    epochs, capped at ``dropout_maxp``: ``min(startp + epoch / inc_epoch * maxp, maxp)``, as the
    original (which says "from startp to maxp in inc_epoch epochs", but computes this).
    """
    if epoch >= params.dropout_epoch:
        return None
    return min(epoch / params.dropout_inc_epoch * params.dropout_maxp + params.dropout_startp, params.dropout_maxp)


class TpsmmObjective(nn.Module):
    """``forward(source, driving, epoch) -> (losses, generated)`` for ``(B, C, H, W)`` frames in [0, 1].

    ``losses``: the weighted scalar losses named as in the original (see the module docstring).
    ``generated``: tensors for the pictures: ``prediction``, ``deformed``, ``occlusion_map``
    ``(B, 1, H, W)``, ``kp_source``, ``kp_driving`` ``(B, K*5, 2)``, and with the equivariance loss
    ``transformed_frame`` and ``transformed_kp``.

    The networks trained here are registered as submodules (the AVD network, trained in the
    second stage, is not); ``vgg`` is a frozen VGG19 feature network (:mod:`fomm.models.vgg`),
    needed when ``perceptual_backbone`` is ``vgg19`` and a perceptual weight is non-zero.
    """

    def __init__(self, model: TpsmmModel, params: TrainParams, vgg: Optional[nn.Module] = None) -> None:
        super().__init__()
        self._model = [model]  # a list keeps the whole model (and its AVD network) out of this module
        self.kp_detector = model.kp_detector
        self.dense_motion_network = model.dense_motion_network
        self.inpainting_network = model.inpainting_network
        self.bg_predictor = model.bg_predictor
        self.params = params
        self.weights = params.loss_weights
        self.pyramid = ImagePyramid(params.scales, model.num_channels)
        self.perceptual = PerceptualLoss(self.weights.perceptual, params.perceptual_backbone, vgg)

    @property
    def model(self) -> TpsmmModel:
        return self._model[0]

    def uses_background(self, epoch: int) -> bool:
        """Whether the background predictor takes part at ``epoch`` (from ``bg_start`` on)."""
        return self.bg_predictor is not None and epoch >= self.params.bg_start

    def forward(self, source: Tensor, driving: Tensor, epoch: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        model = self.model
        kp_source, kp_driving = model.describe(source), model.describe(driving)
        background = self.bg_predictor(source, driving) if self.uses_background(epoch) else None
        rendered = model.render(model.encode_source(source), kp_source, TpsKeypoints(kp_driving.value, background),
                                dropout=dropout_probability(self.params, epoch))
        generated = {"prediction": rendered.prediction, "deformed": rendered.deformed,
                     "occlusion_map": rendered.occlusion_map, "kp_source": kp_source.value,
                     "kp_driving": kp_driving.value}
        losses: dict[str, Tensor] = {}
        if self.perceptual.enabled:
            losses["perceptual"] = self.perceptual(self.pyramid(rendered.prediction), self.pyramid(driving))
        if self.weights.equivariance_value != 0:
            losses["equivariance_value"] = self._equivariance(driving, kp_driving.value, generated)
        if self.weights.warp_loss != 0:
            losses["warp_loss"] = self.weights.warp_loss * self._warp_loss(driving, rendered)
        if background is not None and self.weights.bg != 0:
            losses["bg"] = self.weights.bg * self._background_loss(source, driving, background)
        return losses, generated

    def _equivariance(self, driving: Tensor, kp_driving: Tensor, generated: dict[str, Tensor]) -> Tensor:
        """Keypoints of the driving frame warped by a random TPS, mapped back through the warp, must
        be the driving keypoints: ``mean |kp - T(kp of T-warped frame)|``, weighted."""
        transform_params = self.params.transform_params
        assert transform_params is not None  # the config requires it with a non-zero weight
        warp = RandomTps(driving.shape[0], transform_params.sigma_affine, transform_params.sigma_tps,
                         transform_params.points_tps, device=driving.device)
        transformed_frame = warp.transform_frame(driving)
        transformed_kp = self.kp_detector(transformed_frame)
        generated.update(transformed_frame=transformed_frame, transformed_kp=transformed_kp)
        value = (kp_driving - warp.warp_coordinates(transformed_kp)).abs().mean()
        return self.weights.equivariance_value * value

    def _warp_loss(self, driving: Tensor, rendered: TpsRendered) -> Tensor:
        """Sum over levels of ``mean |E(driving) * O - warp(E(source)) * O|``."""
        targets = self.inpainting_network.encode_visible(driving, rendered.occlusion_maps)  # finest first
        warped = reversed(rendered.warped_encoder_maps)  # coarsest first -> finest first
        return sum((target - ours).abs().mean() for target, ours in zip(targets, warped))

    def _background_loss(self, source: Tensor, driving: Tensor, background: Tensor) -> Tensor:
        """``mean |I - A_{S<-D} A_{D<-S}|``: the two directions' transforms are each other's inverse."""
        reverse = self.bg_predictor(driving, source)
        identity = torch.eye(3, dtype=background.dtype, device=background.device)
        return (identity - background @ reverse).abs().mean()


def random_scale(points: Tensor, scale: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """``(B, N, 2)`` points with x and y each multiplied by a factor uniform in
    ``[1 - scale, 1 + scale)``, one pair of factors per batch element (the original ``random_scale``)."""
    factors = torch.rand(points.shape[0], 2, generator=generator) * (2 * scale) + (1 - scale)
    return points * factors.to(points.device, points.dtype)[:, None, :]


def avd_objective(model: TpsmmModel, source: Tensor, driving: Tensor, params: TrainAvdParams,
                  generator: Optional[torch.Generator] = None) -> dict[str, Tensor]:
    """The AVD stage's loss for ``(B, C, H, W)`` frames: ``{"rec_kp": lambda_shift * mean |kp_D - AVD(kp_S, s(kp_D))|}``
    with ``s`` a :func:`random_scale`. The keypoint detector runs without gradient, in the mode the
    caller left it in (the original left it in training mode, so its batch norm used batch
    statistics); only the AVD network learns.
    """
    with torch.no_grad():
        kp_source = model.kp_detector(source)
        kp_driving = model.kp_detector(driving)
        kp_scaled = random_scale(kp_driving, params.random_scale, generator)
    restored = model.avd_network(kp_source, kp_scaled)
    return {"rec_kp": params.lambda_shift * (kp_driving - restored).abs().mean()}


class AvdStage(nn.Module):
    """The AVD stage as a training objective: ``forward(source, driving)`` -> ``(losses, generated)``
    (:func:`avd_objective`, the keypoint detector frozen in eval mode). Only ``avd_network`` is a
    submodule: it alone trains."""

    def __init__(self, model: TpsmmModel, params: TrainAvdParams) -> None:
        super().__init__()
        if model.avd_network is None:
            raise ConfigError("the AVD stage needs an AVD network: model_params.avd_network_params in the config")
        self.avd_network = model.avd_network
        self._model = [model]  # a list keeps the detector out of this module: it does not train here
        self.params = params

    def forward(self, source: Tensor, driving: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        model = self._model[0]
        model.kp_detector.eval()
        losses = avd_objective(model, source, driving, self.params)
        return losses, {}


def training_plan(model: TpsmmModel, stage: str, perceptual: Callable[[], Optional[nn.Module]]) -> TrainingPlan:
    """The original ``train.py`` (stage ``motion``): one Adam (weight decay 1e-4) over the detector,
    dense motion and inpainting networks, a second over the background predictor that steps from
    ``bg_start`` on, gradients of the detector, dense motion and background networks clipped to a
    largest entry of 10; or ``train_avd.py`` (stage ``avd``): the AVD network alone."""
    config = model.config
    if stage == "avd":
        return avd_training_plan(model, lambda params: AvdStage(model, params))
    if stage != "motion":
        raise ConfigError(f"TPSMM models train in the stages motion and avd, not {stage!r}")
    params = config.train_params
    if params is None:
        raise ConfigError("the config has no train_params section: nothing says how to train")
    needs_vgg = params.perceptual_backbone == "vgg19" and sum(params.loss_weights.perceptual) != 0
    objective = TpsmmObjective(model, params, perceptual() if needs_vgg else None)
    motion = ("kp_detector", "dense_motion_network", "inpainting_network")
    optimizers = [OptimizerPlan("optimizer", motion, params.lr_generator, weight_decay=1e-4,
                                clipped=("kp_detector", "dense_motion_network"))]
    trains = motion
    if model.bg_predictor is not None:
        optimizers.append(OptimizerPlan("optimizer_bg_predictor", ("bg_predictor",), params.lr_generator,
                                        weight_decay=1e-4, start_epoch=params.bg_start, clipped=("bg_predictor",)))
        trains = (*motion, "bg_predictor")
    schedule = Schedule(num_epochs=params.num_epochs, batch_size=params.batch_size, num_repeats=params.num_repeats,
                        epoch_milestones=tuple(params.epoch_milestones), checkpoint_freq=params.checkpoint_freq,
                        num_workers=params.dataloader_workers, seed=params.seed)
    stage_plan = TrainingStage("motion", PairObjective(objective), tuple(optimizer.key for optimizer in optimizers))
    return TrainingPlan(schedule=schedule, optimizers=tuple(optimizers), stages=(stage_plan,), trains=trains)
