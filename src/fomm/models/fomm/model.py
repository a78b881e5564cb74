"""The First Order Motion Model as a family: keypoint detector, generator (with its dense motion
network) and discriminator, behind :class:`~fomm.models.family.MotionModel`."""

from __future__ import annotations

import math
from typing import ClassVar, Optional

from torch import Tensor

from ...config import FommConfig
from ...geometry import DEFORMATION_RESIZERS
from ..family import MotionModel, MotionSettings
from .discriminator import MultiScaleDiscriminator
from .generator import Generator, GeneratorOutput, SourceFeatures
from .keypoint_detector import KeypointDetector
from .keypoints import Keypoints, relative_keypoints
from .point_transfer import PointTransfer


class FommModel(MotionModel):
    """The three networks of one config (and an optional fourth, below), with the config they were built from.

    ``kp_detector``, ``generator`` and ``discriminator`` have the original parameter names, so an
    original checkpoint's state dicts load into them with ``strict=True``. ``point_transfer``
    (ours, optional) is the learned correction of relative motion: built when the config has
    ``model_params.point_transfer_params``, and dropped when a checkpoint comes without its
    weights. ``epoch`` is the number of finished training epochs of the checkpoint this model came
    from (0 when freshly built).
    """

    family: ClassVar[str] = "fomm"
    networks: ClassVar[tuple[str, ...]] = ("generator", "kp_detector", "discriminator", "point_transfer")
    training_only: ClassVar[tuple[str, ...]] = ("discriminator",)
    optional_networks: ClassVar[tuple[str, ...]] = ("point_transfer",)
    motion_type: ClassVar[type] = Keypoints
    state_type: ClassVar[type] = SourceFeatures

    def __init__(self, config: FommConfig) -> None:
        super().__init__()
        self.config = config
        params = config.model_params
        self.kp_detector = KeypointDetector(params.common_params, params.kp_detector_params, params.graph_params)
        self.generator = Generator(params.common_params, params.generator_params)
        self.discriminator = MultiScaleDiscriminator(params.common_params, params.discriminator_params)
        self.point_transfer: Optional[PointTransfer] = None
        if params.point_transfer_params is not None:
            self.point_transfer = PointTransfer(params.common_params.num_kp, params.point_transfer_params)
        self.epoch = 0

    @property
    def num_channels(self) -> int:
        return self.config.model_params.common_params.num_channels

    def motion_modes(self) -> tuple[str, ...]:
        return ("relative", "absolute") + (("learned",) if self.point_transfer is not None else ())

    def default_motion(self) -> MotionSettings:
        """The config's ``animate_params.normalization_params`` (the original normalize_kp flags);
        relative motion is ``learned`` when the model has a point transfer (it was trained to
        correct exactly that motion)."""
        flags = self.config.animate_params.normalization_params
        relative = "learned" if self.point_transfer is not None else "relative"
        return MotionSettings(mode=relative if flags.use_relative_movement else "absolute",
                              adapt_scale=flags.adapt_movement_scale, relative_jacobian=flags.use_relative_jacobian)

    def describe(self, images: Tensor) -> Keypoints:
        return self.kp_detector(images)

    def encode_source(self, image: Tensor) -> SourceFeatures:
        return self.generator.encode(image)

    def transfer(self, source: Keypoints, driving: Keypoints, initial: Keypoints,
                 settings: MotionSettings) -> Keypoints:
        """``absolute``: ``driving`` as it is; ``relative``: :func:`relative_keypoints`;
        ``learned``: that, corrected by :attr:`point_transfer`."""
        self.check_motion_mode(settings.mode)
        batch = driving.batch_size
        if settings.mode == "learned":
            return self.point_transfer(source.expand(batch), driving, initial.expand(batch),
                                       adapt_movement_scale=settings.adapt_scale,
                                       use_relative_jacobian=settings.relative_jacobian)
        return relative_keypoints(source.expand(batch), driving, initial.expand(batch),
                                  adapt_movement_scale=settings.adapt_scale,
                                  use_relative_movement=settings.relative,
                                  use_relative_jacobian=settings.relative_jacobian)

    def render(self, state: SourceFeatures, source: Keypoints, driving: Keypoints) -> GeneratorOutput:
        return self.generator.animate(state, kp_source=source.expand(driving.batch_size), kp_driving=driving)

    def reconstruct(self, source: Tensor, driving: Tensor) -> GeneratorOutput:
        return self.generator(source, kp_source=self.kp_detector(source), kp_driving=self.kp_detector(driving))

    def points(self, motion: Keypoints) -> Tensor:
        return motion.value

    def explain(self, images: Tensor, rendered: GeneratorOutput) -> dict[str, Tensor]:
        """The driving frames' keypoint heatmaps and the K+1 motion masks (background first)."""
        maps = {"heatmap": self.kp_detector.detect(images).heatmap}
        if rendered.mask is not None:
            maps["mask"] = rendered.mask
        return maps

    def point_links(self) -> Optional[tuple[Tensor, float]]:
        graph = self.kp_detector.graph
        if graph is None:
            return None
        return graph.adjacency().detach(), self.config.model_params.graph_params.adjacency_threshold

    def resize_deformation(self, deformation: Tensor, height: int, width: int) -> Tensor:
        """As the generator resizes it: by ``generator_params.deformation_upsampling``."""
        upsampling = self.config.model_params.generator_params.deformation_upsampling
        return DEFORMATION_RESIZERS[upsampling](deformation, height, width)

    def size_multiple(self) -> int:
        """Each downscaled hourglass input must halve ``num_blocks`` times, and the generator's
        input ``num_down_blocks`` times."""
        params = self.config.model_params
        multiples = [2 ** params.generator_params.num_down_blocks]
        detector = params.kp_detector_params
        multiples.append(round(1 / detector.scale_factor) * 2 ** detector.num_blocks)
        motion = params.generator_params.dense_motion_params
        if motion is not None:
            multiples.append(round(1 / motion.scale_factor) * 2 ** motion.num_blocks)
        return math.lcm(*multiples)
