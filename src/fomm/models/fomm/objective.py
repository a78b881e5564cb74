"""FOMM's training: the networks and their losses in one ``forward`` per stage of an iteration
(the unit DistributedDataParallel wraps), and the plan the trainer follows (:func:`training_plan`).

:class:`GeneratorFullModel` runs the keypoint detector and the generator and returns the weighted
generator losses; :class:`DiscriminatorFullModel` returns the discriminator's. The comments name
the terms of section 3.4 of Siarohin et al., "First Order Motion Model for Image Animation",
NeurIPS 2019. Imported on its own (not from :mod:`fomm.models.fomm`): it needs :mod:`fomm.models.losses`.

Under autocast the networks may run in reduced precision, but every loss is computed in float32
(half-precision sums of many small differences lose too much): the image pyramids are built in
float32 from the (float32-widened) prediction, the VGG19 features and discriminator maps are
widened before any difference, and the equivariance algebra (the warp's jacobian, the 2x2 inverse)
and the flow-consistency loss run with autocast off. The tensors returned for the discriminator
step and the pictures are float32 too.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from ...config import LossWeights, TrainParams
from ...errors import ConfigError
from ...geometry import RandomWarp
from ..losses import (
    PerceptualLoss,
    discriminator_gan_loss,
    equivariance_jacobian_loss,
    equivariance_value_loss,
    feature_matching_loss,
    flow_consistency_loss,
    generator_gan_loss,
)
from ..blocks import ImagePyramid, at_least_fp32, full_precision
from ..family import OptimizerPlan, Schedule, TrainingPlan, TrainingStage
from .discriminator import DiscriminatorOutput
from .generator import GeneratorOutput
from .keypoints import Keypoints, relative_keypoints
from .model import FommModel
from .point_transfer import PointTransfer

__all__ = ["DiscriminatorFullModel", "GeneratorFullModel", "training_plan"]


class GeneratorFullModel(nn.Module):
    """Keypoint detector + generator + their losses in one forward.

    ``forward(batch, epoch, earlier)`` with ``(B, C, H, W)`` ``source`` and ``driving`` batches in
    [0, 1] returns
    ``(losses, generated)``: weighted scalar losses keyed by the original names (``perceptual``,
    ``gen_gan``, ``feature_matching``, ``equivariance_value``, ``equivariance_jacobian``; ours:
    ``flow_consistency``, ``decoded_reconstruction``, ``keypoint_transfer``), only those with a
    non-zero weight, and a dict of tensors for the discriminator step and the visualisation:
    ``prediction`` ``(B, C, H, W)``, ``kp_source`` and ``kp_driving`` values ``(B, K, 2)``, and
    ``deformed`` / ``occlusion_map`` when the generator makes them.

    The discriminator is used but not registered as a submodule: the gradients this loss leaves on
    it are discarded (as in the original), and keeping it out means DDP does not synchronise them.
    """

    def __init__(self, kp_detector: nn.Module, generator: nn.Module, discriminator: nn.Module,
                 train_params: TrainParams, num_channels: int, vgg: Optional[nn.Module] = None,
                 point_transfer: Optional[PointTransfer] = None) -> None:
        super().__init__()
        self.kp_detector = kp_detector
        self.generator = generator
        self._discriminator = [discriminator]  # a list hides it from nn.Module registration
        # Not trained here (no optimiser holds it) and not this module's: hidden as the discriminator is.
        self._point_transfer = [point_transfer]
        self.weights: LossWeights = train_params.loss_weights
        self.transform_params = train_params.transform_params
        self.pyramid = ImagePyramid(train_params.scales, num_channels)
        self.perceptual = PerceptualLoss(self.weights.perceptual, train_params.perceptual_backbone, vgg)
        if (self.weights.equivariance_value or self.weights.equivariance_jacobian) and self.transform_params is None:
            raise ConfigError("train_params.loss_weights.equivariance_value/equivariance_jacobian are non-zero "
                              "but train_params.transform_params (sigma_affine, sigma_tps, points_tps) is missing")

    @property
    def discriminator(self) -> nn.Module:
        return self._discriminator[0]

    def forward(self, batch: dict[str, Tensor], epoch: int = 0, earlier: Optional[dict[str, Tensor]] = None
                ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """``batch``: ``source`` and ``driving`` ``(B, C, H, W)``; ``flow`` ``(B, 2, H, W)``
        (source -> driving optical flow, normalised units) and ``nearby`` ``(B,)`` bool, which the
        flow-consistency loss needs; for training on cross pairs, ``initial`` (the driving video's
        first frame) and ``target`` (the truth) ``(B, C, H, W)``: the source is then animated by
        relative motion, as :class:`~fomm.animate.Animator` does, and compared with the target."""
        source, driving, flow, nearby = batch["source"], batch["driving"], batch.get("flow"), batch.get("nearby")
        target = batch.get("target", driving)
        weights = self.weights
        source_detection = self.kp_detector.detect(source)
        kp_source = source_detection.keypoints
        kp_driving = self.kp_detector(driving)
        kp_rendered = kp_driving
        if "initial" in batch:
            kp_rendered = self._relative(kp_source, kp_driving, batch["initial"], source)
        output = self.generator(source, kp_source=kp_source, kp_driving=kp_rendered)
        prediction = at_least_fp32(output.prediction)
        losses: dict[str, Tensor] = {}
        with full_precision(driving):
            pyramid_real = self.pyramid(target)
            pyramid_fake = self.pyramid(prediction)

        if self.perceptual.enabled:
            # The reconstruction loss of section 3.4, L_rec = sum_i |N_i(D^) - N_i(D)|, summed over the
            # pyramid's scales.
            losses["perceptual"] = self.perceptual(pyramid_fake, pyramid_real)

        if weights.decoded_reconstruction != 0:
            losses["decoded_reconstruction"] = weights.decoded_reconstruction * self._decoded_loss(output, pyramid_real)

        if weights.keypoint_transfer != 0 and "target" in batch:
            losses["keypoint_transfer"] = weights.keypoint_transfer * self._keypoint_transfer_loss(kp_rendered, target)

        if weights.generator_gan != 0:
            losses.update(self._gan_losses(pyramid_real, pyramid_fake, kp_rendered))

        if weights.equivariance_value != 0 or weights.equivariance_jacobian != 0:
            losses.update(self._equivariance_losses(driving, kp_driving))

        if weights.flow_consistency != 0:
            if flow is None:
                raise ConfigError("loss_weights.flow_consistency needs batches with 'flow' (dataset_params "
                                    "compute_flow, set automatically for dataset_params datasets)")
            with full_precision(driving):
                losses["flow_consistency"] = weights.flow_consistency * flow_consistency_loss(
                    kp_source.float(), source_detection.heatmap.float(), kp_driving.float(), flow.float(), mask=nearby)

        generated = {"prediction": prediction, "kp_source": kp_source.value, "kp_driving": kp_rendered.value}
        if output.deformed is not None:
            generated["deformed"] = at_least_fp32(output.deformed)
        if output.occlusion_map is not None:
            generated["occlusion_map"] = at_least_fp32(output.occlusion_map)
        return losses, generated

    def _decoded_loss(self, output: GeneratorOutput, pyramid_real: dict[str, Tensor]) -> Tensor:
        """The reconstruction loss on the decoder's image before the occlusion blend (ours)."""
        if output.decoded is None:
            raise ConfigError("train_params.loss_weights.decoded_reconstruction needs a generator with "
                              "output_blend: occlusion (its decoder's image is otherwise the prediction)")
        with full_precision(output.decoded):
            pyramid_decoded = self.pyramid(at_least_fp32(output.decoded))
        return self.perceptual(pyramid_decoded, pyramid_real)

    def _keypoint_transfer_loss(self, kp_rendered: Keypoints, target: Tensor) -> Tensor:
        """Mean L1 distance between the keypoints the generator was given ``(B, K, 2)`` (and
        ``(B, K, 2, 2)`` jacobians) and the detector's keypoints of the truth frame (ours).

        On a plain sample (initial = source, target = driving) the two are the same keypoints up to
        rounding, so the term is zero there and only the cross pairs of the batch contribute.
        Neither side is detached: both are the detector's, and agreeing is what is asked of it."""
        kp_truth = self.kp_detector(target)
        with full_precision(target):
            truth = kp_truth.float()
            loss = (kp_rendered.value - truth.value).abs().mean()
            if kp_rendered.jacobian is not None and truth.jacobian is not None:
                loss = loss + (kp_rendered.jacobian - truth.jacobian).abs().mean()
        return loss

    def _relative(self, kp_source: Keypoints, kp_driving: Keypoints, initial: Tensor, source: Tensor) -> Keypoints:
        """The driving keypoints moved onto the source relative to the initial frame's (Appendix A.3;
        where ``initial`` is the source itself, the driving keypoints again, up to rounding). With a
        point transfer (the model's, frozen), cross pairs get its correction, as ``fomm animate``
        renders them; plain samples (``initial`` is ``source``) keep the driving keypoints."""
        kp_initial = self.kp_detector(initial)
        # The 2x2 inverse of the relative jacobian stays in float32 under autocast.
        with full_precision(initial):
            relative = relative_keypoints(kp_source.float(), kp_driving.float(), kp_initial.float())
            transfer = self._point_transfer[0]
            if transfer is None:
                return relative
            learned = transfer(kp_source.float(), kp_driving.float(), kp_initial.float())
        cross = (initial != source).flatten(1).any(dim=1)
        return Keypoints(torch.where(cross[:, None, None], learned.value, relative.value),
                         torch.where(cross[:, None, None, None], learned.jacobian, relative.jacobian))

    def _gan_losses(self, pyramid_real: dict[str, Tensor], pyramid_fake: dict[str, Tensor],
                    kp_driving: Keypoints) -> dict[str, Tensor]:
        """The generator's least-squares GAN loss and, when weighted, feature matching."""
        weights = self.weights
        kp_condition = Keypoints(kp_driving.value.detach())
        fake = _float_output(self.discriminator(pyramid_fake, kp=kp_condition))
        # Run on the real frames even without feature matching, as the original: each training
        # forward advances the spectral norm's power iteration.
        real = _float_output(self.discriminator(pyramid_real, kp=kp_condition))
        losses = {"gen_gan": weights.generator_gan * generator_gan_loss(fake)}
        if sum(weights.feature_matching) != 0:
            losses["feature_matching"] = feature_matching_loss(real, fake, weights.feature_matching)
        return losses

    def _equivariance_losses(self, driving: Tensor, kp_driving: Keypoints) -> dict[str, Tensor]:
        """Keypoints detected on a randomly warped driving frame, mapped back through the known
        warp, must be the driving frame's keypoints (values and jacobians)."""
        weights, params = self.weights, self.transform_params
        assert params is not None  # checked in __init__
        transform = RandomWarp(driving.shape[0], params.sigma_affine, params.sigma_tps, params.points_tps,
                               device=driving.device)
        transformed_kp = self.kp_detector(transform.transform_frame(driving))
        losses: dict[str, Tensor] = {}
        # The chain-rule jacobian and the 2x2 inverse are done in float32 even under autocast.
        with full_precision(driving):
            kp, transformed = kp_driving.float(), transformed_kp.float()
            if weights.equivariance_value != 0:
                # Equivariance of values: T_{X<-R}(p_k) = T_{X<-Y} o T_{Y<-R}(p_k), X the driving frame, Y its warp.
                losses["equivariance_value"] = weights.equivariance_value * equivariance_value_loss(
                    kp, transformed, transform)
            if weights.equivariance_jacobian != 0:
                # Equivariance of jacobians: the chain rule, as J_X^-1 (dT_{X<-Y} J_Y) = identity.
                losses["equivariance_jacobian"] = weights.equivariance_jacobian * equivariance_jacobian_loss(
                    kp, transformed, transform)
        return losses


class DiscriminatorFullModel(nn.Module):
    """Discriminator + its least-squares loss.

    ``forward(batch, epoch, earlier)``: the batch's ``(B, C, H, W)`` real frames (``target`` when
    the batch has one, else ``driving``) and the
    generator stage's prediction and ``(B, K, 2)`` driving keypoint values (the discriminator's
    condition when ``use_kp``), detached here. Returns ``({'disc_gan': weighted loss}, {})``.
    """

    def __init__(self, discriminator: nn.Module, train_params: TrainParams, num_channels: int) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.weight = train_params.loss_weights.discriminator_gan
        self.pyramid = ImagePyramid(train_params.scales, num_channels)

    def forward(self, batch: dict[str, Tensor], epoch: int, earlier: dict[str, Tensor]
                ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The discriminator's loss on the batch's real frames and the generator stage's
        ``prediction`` and ``kp_driving`` (detached here)."""
        driving, prediction, kp_driving = batch.get("target", batch["driving"]), earlier["prediction"], earlier["kp_driving"]
        kp_condition = Keypoints(kp_driving.detach())
        with full_precision(driving):
            pyramid_real, pyramid_fake = self.pyramid(driving), self.pyramid(at_least_fp32(prediction.detach()))
        real = _float_output(self.discriminator(pyramid_real, kp=kp_condition))
        fake = _float_output(self.discriminator(pyramid_fake, kp=kp_condition))
        return {"disc_gan": self.weight * discriminator_gan_loss(real, fake)}, {}


def _float_maps(values: dict[str, Tensor]) -> dict[str, Tensor]:
    return {key: value.float() for key, value in values.items()}


def _float_output(output: DiscriminatorOutput) -> DiscriminatorOutput:
    """The discriminator's maps in float32 (they may be half precision under autocast)."""
    output.prediction_maps = _float_maps(output.prediction_maps)
    output.feature_maps = {key: [value.float() for value in maps] for key, maps in output.feature_maps.items()}
    return output



def training_plan(model: FommModel, stage: str, perceptual: Callable[[], Optional[nn.Module]]) -> TrainingPlan:
    """The original ``train.py``'s iteration: the keypoint detector and generator step on the
    generator losses, then, when ``loss_weights.generator_gan != 0``, the discriminator on its own
    (every optimiser is built, so that turning the GAN on later finds its schedule)."""
    if stage != "motion":
        raise ConfigError(f"FOMM models have one training stage, not {stage!r} (no AVD network)")
    config = model.config
    params = config.train_params
    if params is None:
        raise ConfigError("the config has no train_params section: nothing says how to train")
    weights = params.loss_weights
    needs_vgg = params.perceptual_backbone == "vgg19" and sum(weights.perceptual) != 0
    num_channels = config.model_params.common_params.num_channels
    generator_stage = GeneratorFullModel(model.kp_detector, model.generator, model.discriminator, params,
                                         num_channels, perceptual() if needs_vgg else None, model.point_transfer)
    stages = [TrainingStage("generator", generator_stage, ("optimizer_generator", "optimizer_kp_detector"))]
    if weights.generator_gan != 0:
        stages.append(TrainingStage("discriminator", DiscriminatorFullModel(model.discriminator, params, num_channels),
                                    ("optimizer_discriminator",)))
    optimizers = (OptimizerPlan("optimizer_generator", ("generator",), params.lr_generator),
                  OptimizerPlan("optimizer_kp_detector", ("kp_detector",), params.lr_kp_detector),
                  OptimizerPlan("optimizer_discriminator", ("discriminator",), params.lr_discriminator))
    dataset = config.dataset_params
    if dataset is not None and weights.flow_consistency != 0:
        # The flow-consistency loss needs the source -> driving optical flow from the data workers.
        dataset = dataset.model_copy(update={"compute_flow": True})
    schedule = Schedule(num_epochs=params.num_epochs, batch_size=params.batch_size, num_repeats=params.num_repeats,
                        epoch_milestones=tuple(params.epoch_milestones), checkpoint_freq=params.checkpoint_freq,
                        num_workers=params.num_workers, seed=params.seed,
                        grad_clip=params.grad_clip)
    return TrainingPlan(schedule=schedule, optimizers=optimizers, stages=tuple(stages),
                        trains=("generator", "kp_detector", "discriminator"), dataset_params=dataset)
