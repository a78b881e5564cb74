"""The Thin-Plate Spline Motion Model behind the family interface (:mod:`fomm.models.family`).

Motion is described by K groups of five keypoints (:class:`TpsKeypoints`); the source's state is
its image and the inpainting network's encoder maps (:class:`TpsSource`); rendering runs the dense
motion network and the inpainting network (:class:`TpsRendered` keeps every intermediate).
Relative motion is the original demo's ``relative_kp``; the ``avd`` mode runs the AVD network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from torch import Tensor

from ...bundle import TensorBundle
from ...errors import ConfigError
from ...geometry import convex_hull_area
from ..family import MotionModel, MotionSettings, Rendered
from .avd_network import AvdNetwork
from .bg_motion_predictor import BackgroundMotionPredictor
from .config import TpsmmConfig
from .dense_motion import DenseMotionNetwork, TpsMotion
from .inpainting_network import Inpainted, InpaintingNetwork
from .keypoint_detector import KeypointDetector

__all__ = ["TpsKeypoints", "TpsRendered", "TpsSource", "TpsmmModel", "relative_motion"]


@dataclass
class TpsKeypoints(TensorBundle):
    """TPSMM's motion description of a batch of images.

    ``value`` ``(B, K*5, 2)``: K groups of five keypoints, (x, y) in [-1, 1]. ``background``
    ``(B, 3, 3)``: an affine transform mapping driving (x, y, 1) to source coordinates for the
    background, or None for the identity; only :meth:`TpsmmModel.reconstruct` sets it (the
    original demo animates without one).
    """

    value: Tensor
    background: Optional[Tensor] = None


@dataclass
class TpsSource(TensorBundle):
    """A source image ``(B, C, H, W)`` and its encoder maps (finest first), computed once."""

    image: Tensor
    encoder_maps: tuple[Tensor, ...]


@dataclass
class TpsRendered(Rendered):
    """A rendered batch and everything that produced it.

    ``prediction``, ``deformed`` (the source warped by the dense motion), ``occlusion_map`` (the
    ``(B, 1, H, W)`` mask of the final blend): see :class:`~fomm.models.family.Rendered`.
    At the dense motion resolution ``h x w``: ``deformation`` ``(B, h, w, 2)``,
    ``contribution_maps`` ``(B, K+1, h, w)``, ``deformed_source`` ``(B, K+1, C, h, w)`` (the
    source under each transform, background first). ``occlusion_maps``: every mask, coarsest first.
    ``warped_encoder_maps``: the source's encoder maps warped and masked, coarsest first.
    """

    deformation: Optional[Tensor] = None
    contribution_maps: Optional[Tensor] = None
    deformed_source: Optional[Tensor] = None
    occlusion_maps: tuple[Tensor, ...] = ()
    warped_encoder_maps: tuple[Tensor, ...] = ()

    @classmethod
    def of(cls, motion: TpsMotion, inpainted: Inpainted) -> "TpsRendered":
        return cls(prediction=inpainted.prediction, deformed=inpainted.deformed,
                   occlusion_map=inpainted.occlusion_map, deformation=motion.deformation,
                   contribution_maps=motion.contribution_maps, deformed_source=motion.deformed_source,
                   occlusion_maps=motion.occlusion_maps, warped_encoder_maps=inpainted.warped_encoder_maps)


def relative_motion(source: Tensor, driving: Tensor, initial: Tensor, adapt_scale: bool) -> Tensor:
    """The original demo's ``relative_kp``: ``(driving - initial) * scale + source``.

    Keypoints ``(B or 1, K*5, 2)``. ``scale`` is sqrt(hull area of the source points) /
    sqrt(hull area of the initial driving points), over all K*5 points of batch element 0, when
    ``adapt_scale``, else 1 (the original demo always adapts).
    """
    scale = 1.0
    if adapt_scale:
        scale = math.sqrt(convex_hull_area(source[0])) / math.sqrt(convex_hull_area(initial[0]))
    return (driving - initial) * scale + source


class TpsmmModel(MotionModel):
    """The networks of one TPSMM config, named as in the original checkpoints.

    ``kp_detector``, ``dense_motion_network`` and ``inpainting_network`` always; ``bg_predictor``
    when ``common_params.bg``; ``avd_network`` when ``with_avd`` (by default: when the config has
    ``avd_network_params``). :attr:`networks` lists those this model built.
    """

    family = "tpsmm"
    networks = ("kp_detector", "dense_motion_network", "inpainting_network", "bg_predictor", "avd_network")
    # Animation never estimates the background (the original demo passes no bg_param).
    training_only = ("bg_predictor",)

    def __init__(self, config: TpsmmConfig, with_avd: Optional[bool] = None) -> None:
        super().__init__()
        self.config = config
        params = config.model_params
        common = params.common_params
        self.kp_detector = KeypointDetector(common.num_tps)
        self.dense_motion_network = DenseMotionNetwork(common, params.dense_motion_params)
        self.inpainting_network = InpaintingNetwork(common, params.generator_params)
        built = ["kp_detector", "dense_motion_network", "inpainting_network"]
        if common.bg:
            self.bg_predictor = BackgroundMotionPredictor()
            built.append("bg_predictor")
        if with_avd is None:
            with_avd = params.avd_network_params is not None
        if with_avd:
            if params.avd_network_params is None:
                raise ConfigError("an AVD network needs model_params.avd_network_params "
                                  "(id_bottle_size, pose_bottle_size) in the config")
            avd = params.avd_network_params
            self.avd_network = AvdNetwork(common.num_tps, avd.id_bottle_size, avd.pose_bottle_size)
            built.append("avd_network")
        self.networks = tuple(built)  # this instance's, shadowing the family's full list
        self.epoch = 0

    @property
    def num_channels(self) -> int:
        return self.config.model_params.common_params.num_channels

    @property
    def num_tps(self) -> int:
        return self.config.model_params.common_params.num_tps

    @property
    def has_avd(self) -> bool:
        return "avd_network" in self.networks

    def describe(self, images: Tensor) -> TpsKeypoints:
        """The keypoints of ``(B, C, H, W)`` images."""
        return TpsKeypoints(self.kp_detector(images))

    def encode_source(self, image: Tensor) -> TpsSource:
        return TpsSource(image=image, encoder_maps=self.inpainting_network.encode(image))

    def transfer(self, source: TpsKeypoints, driving: TpsKeypoints, initial: TpsKeypoints,
                 settings: MotionSettings) -> TpsKeypoints:
        """``absolute``: ``driving`` as it is. ``relative``: :func:`relative_motion`. ``avd``: the
        AVD network's keypoints for the source's identity in the driving pose."""
        if settings.mode == "absolute":
            return driving
        if settings.mode == "relative":
            return TpsKeypoints(relative_motion(source.value, driving.value, initial.value, settings.adapt_scale))
        if not self.has_avd:
            raise ConfigError("motion mode 'avd' needs an AVD network, and this model has none (its checkpoint "
                              "has no 'avd_network' weights, or its config no avd_network_params)")
        batch = driving.batch_size
        return TpsKeypoints(self.avd_network(source.value.expand(batch, -1, -1), driving.value))

    def render(self, state: TpsSource, source: TpsKeypoints, driving: TpsKeypoints,
               dropout: Optional[float] = None) -> TpsRendered:
        """The source (``state`` and ``source``, batch 1 or B) moved to ``driving`` (batch B).

        ``driving.background`` is the background transform when set. ``dropout``: the transform
        dropout probability of training (None: none).
        """
        batch = driving.batch_size
        state, source = state.expand(batch), source.expand(batch)
        motion = self.dense_motion_network(state.image, driving.value, source.value,
                                           background=driving.background, dropout=dropout)
        inpainted = self.inpainting_network(state.image, state.encoder_maps, motion)
        return TpsRendered.of(motion, inpainted)

    def reconstruct(self, source: Tensor, driving: Tensor) -> TpsRendered:
        """``source`` moved to the pose of ``driving`` (both ``(B, C, H, W)``), with the background
        transform predicted from the pair when the model has a background predictor (the original
        ``reconstruction.py``)."""
        driving_motion = self.describe(driving)
        if "bg_predictor" in self.networks:
            driving_motion.background = self.bg_predictor(source, driving)
        return self.render(self.encode_source(source), self.describe(source), driving_motion)
