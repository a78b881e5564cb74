"""The Thin-Plate Spline Motion Model behind the family interface (:mod:`fomm.models.family`).

Motion is described by K groups of five keypoints (:class:`TpsKeypoints`); the source's state is
its image and the inpainting network's encoder maps (:class:`TpsSource`); rendering runs the dense
motion network and the inpainting network (:class:`TpsRendered` keeps every intermediate).
Relative motion is the original demo's ``relative_kp``; the ``avd`` mode runs the AVD network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Optional

from torch import Tensor

from ...bundle import TensorBundle
from ...pose import hull_scale
from ..family import MotionModel, MotionSettings, Rendered
from .avd_network import AvdNetwork
from .bg_motion_predictor import BackgroundMotionPredictor
from .config import TpsmmConfig
from .dense_motion import DenseMotionNetwork, TpsMotion
from .inpainting_network import Inpainted, InpaintingNetwork, resize_deformation
from .keypoint_detector import POINTS_PER_TPS, KeypointDetector
from .tps import TpsTransform, fit_tps

__all__ = ["TpsKeypoints", "TpsRendered", "TpsSource", "TpsmmModel", "relative_motion"]


@dataclass
class TpsKeypoints(TensorBundle):
    """TPSMM's motion description of a batch of images.

    ``value`` ``(B, K*5, 2)``: K groups of five keypoints, (x, y) in [-1, 1]. ``background``
    ``(B, 3, 3)``: an affine transform mapping driving (x, y, 1) to source coordinates for the
    background, or None for the identity; only :meth:`TpsmmModel.reconstruct` sets it (the
    original demo animates without one). ``tps_affine`` ``(B, K, 2, 3)`` and ``tps_weights``
    ``(B, K, 5, 2)``: the K thin-plate splines from these points to the source's, when
    :meth:`TpsmmModel.transfer` has fitted them already (rendering fits them otherwise). Fitting
    is a small linear solve per spline, which ONNX has no operation for: this way the exported
    render graph takes the fitted splines as inputs.
    """

    value: Tensor
    background: Optional[Tensor] = None
    tps_affine: Optional[Tensor] = None
    tps_weights: Optional[Tensor] = None


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
        scale = hull_scale(source, initial)
    return (driving - initial) * scale + source


class TpsmmModel(MotionModel):
    """The networks of one TPSMM config, named as in the original checkpoints.

    ``kp_detector``, ``dense_motion_network`` and ``inpainting_network`` always; ``bg_predictor``
    when ``common_params.bg``; ``avd_network`` when the config has ``avd_network_params``
    (:meth:`built_networks` lists those this model has; a checkpoint without the optional ones
    removes them, see :func:`fomm.checkpoint.load_state_dicts`).
    """

    training_stages: ClassVar[tuple[str, ...]] = ("motion", "avd")
    family: ClassVar[str] = "tpsmm"
    networks: ClassVar[tuple[str, ...]] = ("kp_detector", "dense_motion_network", "inpainting_network",
                                           "bg_predictor", "avd_network")
    # Animation never estimates the background (the original demo passes no bg_param).
    training_only: ClassVar[tuple[str, ...]] = ("bg_predictor",)
    optional_networks: ClassVar[tuple[str, ...]] = ("bg_predictor", "avd_network")
    point_group_size: ClassVar[int] = POINTS_PER_TPS
    motion_type: ClassVar[type] = TpsKeypoints
    state_type: ClassVar[type] = TpsSource

    def __init__(self, config: TpsmmConfig) -> None:
        super().__init__()
        self.config = config
        params = config.model_params
        common = params.common_params
        self.kp_detector = KeypointDetector(common.num_tps)
        self.dense_motion_network = DenseMotionNetwork(common, params.dense_motion_params)
        self.inpainting_network = InpaintingNetwork(common, params.generator_params)
        self.bg_predictor: Optional[BackgroundMotionPredictor] = BackgroundMotionPredictor() if common.bg else None
        self.avd_network: Optional[AvdNetwork] = None
        if params.avd_network_params is not None:
            avd = params.avd_network_params
            self.avd_network = AvdNetwork(common.num_tps, avd.id_bottle_size, avd.pose_bottle_size)
        self.epoch = 0

    @property
    def num_channels(self) -> int:
        return self.config.model_params.common_params.num_channels

    @property
    def num_tps(self) -> int:
        return self.config.model_params.common_params.num_tps

    @property
    def has_avd(self) -> bool:
        return self.avd_network is not None

    def default_motion(self) -> MotionSettings:
        """The original demo's: relative motion, scaled by the hull areas (``animate_params`` may
        say otherwise)."""
        animate = self.config.animate_params
        mode = animate.mode if animate.mode != "avd" or self.has_avd else "relative"
        return MotionSettings(mode=mode, adapt_scale=animate.adapt_movement_scale)

    def points(self, motion: TpsKeypoints) -> Tensor:
        return motion.value

    def explain(self, images: Tensor, rendered: TpsRendered) -> dict[str, Tensor]:
        """The K+1 contribution maps of the transforms (background first) and the occlusion
        masks of every resolution (the finest first)."""
        maps: dict[str, Tensor] = {}
        if rendered.contribution_maps is not None:
            maps["contribution"] = rendered.contribution_maps
        return maps

    def resize_deformation(self, deformation: Tensor, height: int, width: int) -> Tensor:
        """As the inpainting network resizes it (``align_corners=True``)."""
        return resize_deformation(deformation, height, width)

    def size_multiple(self) -> int:
        params = self.config.model_params
        motion = params.dense_motion_params
        return math.lcm(2 ** params.generator_params.num_down_blocks,
                        round(1 / motion.scale_factor) * 2 ** motion.num_blocks)

    def _fitted(self, source: TpsKeypoints, driving: TpsKeypoints) -> TpsKeypoints:
        """``driving`` with the thin-plate splines from its points to the source's."""
        batch = driving.batch_size
        groups = self.num_tps
        splines = fit_tps(driving.value.view(batch, groups, POINTS_PER_TPS, 2),
                          source.value.expand(batch, -1, -1).reshape(batch, groups, POINTS_PER_TPS, 2))
        return TpsKeypoints(driving.value, background=driving.background, tps_affine=splines.affine,
                            tps_weights=splines.weights)

    def describe(self, images: Tensor) -> TpsKeypoints:
        """The keypoints of ``(B, C, H, W)`` images."""
        return TpsKeypoints(self.kp_detector(images))

    def encode_source(self, image: Tensor) -> TpsSource:
        return TpsSource(image=image, encoder_maps=self.inpainting_network.encode(image))

    def transfer(self, source: TpsKeypoints, driving: TpsKeypoints, initial: TpsKeypoints,
                 settings: MotionSettings) -> TpsKeypoints:
        """``absolute``: ``driving`` as it is. ``relative``: :func:`relative_motion`. ``avd``: the
        AVD network's keypoints for the source's identity in the driving pose. The splines from
        the result to the source are fitted here (see :class:`TpsKeypoints`)."""
        self.check_motion_mode(settings.mode)
        if settings.mode == "absolute":
            moved = TpsKeypoints(driving.value)
        elif settings.mode == "relative":
            moved = TpsKeypoints(relative_motion(source.value, driving.value, initial.value, settings.adapt_scale))
        else:
            batch = driving.batch_size
            moved = TpsKeypoints(self.avd_network(source.value.expand(batch, -1, -1), driving.value))
        return self._fitted(source, moved)

    def render(self, state: TpsSource, source: TpsKeypoints, driving: TpsKeypoints,
               dropout: Optional[float] = None) -> TpsRendered:
        """The source (``state`` and ``source``, batch 1 or B) moved to ``driving`` (batch B).

        ``driving.background`` is the background transform when set. ``dropout``: the transform
        dropout probability of training (None: none).
        """
        batch = driving.batch_size
        state, source = state.expand(batch), source.expand(batch)
        splines = None
        if driving.tps_affine is not None and driving.tps_weights is not None:
            control = driving.value.view(batch, self.num_tps, POINTS_PER_TPS, 2)
            splines = TpsTransform(affine=driving.tps_affine, control_points=control, weights=driving.tps_weights)
        motion = self.dense_motion_network(state.image, driving.value, source.value,
                                           background=driving.background, dropout=dropout, splines=splines)
        inpainted = self.inpainting_network(state.image, state.encoder_maps, motion)
        return TpsRendered.of(motion, inpainted)

    def reconstruct(self, source: Tensor, driving: Tensor) -> TpsRendered:
        """``source`` moved to the pose of ``driving`` (both ``(B, C, H, W)``), with the background
        transform predicted from the pair when the model has a background predictor (the original
        ``reconstruction.py``)."""
        driving_motion = self.describe(driving)
        if self.bg_predictor is not None:
            driving_motion.background = self.bg_predictor(source, driving)
        return self.render(self.encode_source(source), self.describe(source), driving_motion)
