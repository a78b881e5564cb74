"""The MRAA family behind the family interface: :class:`MraaModel`.

Motion Representations for Articulated Animation (Siarohin et al., CVPR 2021): a region
predictor describes each image by K regions (centre, covariance, affine frame from PCA); a
generator warps the encoded source by a pixelwise flow mixed from the regions' affine motions and
a background motion, and fills what the source does not show; a background motion predictor
(training and reconstruction) and an AVD network (animation via disentanglement) complete it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Optional, Sequence

import torch
from torch import Tensor

from ..family import MotionModel, MotionSettings
from .avd_network import AvdNetwork
from .bg_motion_predictor import BgMotionPredictor
from .config import MraaConfig
from .generator import EncodedSource, Generator, MraaRendered
from .region_predictor import RegionPredictor, covariance_square_root
from .regions import Regions, relative_regions

__all__ = ["MraaModel", "MraaRendered", "build_mraa_model"]

class MraaModel(MotionModel):
    """The networks of one MRAA config, with the config they were built from.

    Attributes are named as the networks in an original checkpoint (``region_predictor``,
    ``bg_predictor``, ``generator``, ``avd_network``), with the original parameter names inside,
    so ``getattr(model, name).load_state_dict(state_dict, strict=True)`` loads an original
    checkpoint. :meth:`built_networks` lists those this model has: all four when built from a
    config (``avd_network`` only with ``avd_network_params``); a checkpoint that lacks the
    background predictor or the AVD network removes it (see :func:`fomm.checkpoint.load_state_dicts`).
    """

    training_stages: ClassVar[tuple[str, ...]] = ("motion", "avd")
    family: ClassVar[str] = "mraa"
    networks: ClassVar[tuple[str, ...]] = ("region_predictor", "bg_predictor", "generator", "avd_network")
    #: The background predictor moves the background in training and reconstruction only; the
    #: original animation never used it.
    training_only: ClassVar[tuple[str, ...]] = ("bg_predictor",)
    optional_networks: ClassVar[tuple[str, ...]] = ("bg_predictor", "avd_network")
    motion_type: ClassVar[type] = Regions
    state_type: ClassVar[type] = EncodedSource

    def __init__(self, config: MraaConfig) -> None:
        super().__init__()
        self.config = config
        params = config.model_params
        self.region_predictor = RegionPredictor(params)
        self.bg_predictor: Optional[BgMotionPredictor] = BgMotionPredictor(params.bg_predictor_params,
                                                                           params.num_channels)
        self.generator = Generator(params)
        self.avd_network: Optional[AvdNetwork] = None
        if params.avd_network_params is not None:
            self.avd_network = AvdNetwork(params.avd_network_params, params.num_regions)
        self.epoch = 0

    @property
    def num_channels(self) -> int:
        return self.config.model_params.num_channels

    @property
    def has_avd(self) -> bool:
        return self.avd_network is not None

    def default_motion(self) -> MotionSettings:
        """The config's ``animate_params.mode`` (``standard`` is absolute motion); relative motion
        scales by the hull areas, as the original always did."""
        mode = {"standard": "absolute", "relative": "relative", "avd": "avd"}[self.config.animate_params.mode]
        if mode == "avd" and not self.has_avd:
            mode = "relative"
        return MotionSettings(mode=mode, adapt_scale=True)

    def points(self, motion: Regions) -> Tensor:
        return motion.shift

    def regions(self, motion: Regions) -> Optional[Tensor]:
        return motion.covar

    def explain(self, images: Tensor, rendered: MraaRendered) -> dict[str, Tensor]:
        """The driving frames' region heatmaps and the K+1 motion masks (background first)."""
        maps = {"region": self.region_predictor.detect(images).heatmap}
        if rendered.mask is not None:
            maps["mask"] = rendered.mask
        return maps

    def size_multiple(self) -> int:
        params = self.config.model_params
        predictor = params.region_predictor_params
        multiples = [2 ** params.generator_params.num_down_blocks,
                     round(1 / predictor.scale_factor) * 2 ** predictor.num_blocks]
        flow = params.generator_params.pixelwise_flow_predictor_params
        if flow is not None:
            multiples.append(round(1 / flow.scale_factor) * 2 ** flow.num_blocks)
        return math.lcm(*multiples)

    # The SVD that turns a covariance into an affine frame is no ONNX operation: the exported
    # describe graph returns the centres and covariances, and the frames are computed here.

    def describe_for_export(self, images: Tensor) -> tuple[Tensor, ...]:
        if not self.region_predictor.pca_based:
            return self.describe(images).tensors()
        regions = self.region_predictor.detect(images, frames=False).regions
        return (regions.shift, regions.covar)

    def description_from_export(self, outputs: Sequence[Tensor],
                                layout: tuple[tuple[str, Optional[int]], ...]) -> Regions:
        if not self.region_predictor.pca_based:
            return Regions.from_tensors(outputs, layout)
        shift, covar = outputs
        affine, _, _ = covariance_square_root(covar)
        return Regions(shift=shift, covar=covar, affine=affine)

    # ---------------------------------------------------------------------------- animation

    def describe(self, images: Tensor) -> Regions:
        """The regions of ``(B, C, H, W)`` images in [0, 1] (no background motion)."""
        return self.region_predictor(images)

    def encode_source(self, image: Tensor) -> EncodedSource:
        """The source image ``(B, C, H, W)`` with its encoder features and the flow predictor's
        downscaled copy."""
        return self.generator.encode(image)

    def transfer(self, source: Regions, driving: Regions, initial: Regions, settings: MotionSettings) -> Regions:
        """The regions to render for driving frames (batch B), by ``settings.mode``:

        * ``absolute``: the driving regions as they are (the original's ``standard`` mode);
        * ``relative``: the original ``relative`` mode (:func:`relative_regions`): the change from
          ``initial`` to ``driving`` applied to the source's regions. ``adapt_scale=True`` scales
          the change of centres by sqrt(source / initial hull area) as the original always did;
          ``adapt_scale=False`` applies it unscaled (not an option of the original);
        * ``avd``: the AVD network's regions, with the source's shape and the driving pose.
        """
        self.check_motion_mode(settings.mode)
        if settings.mode == "absolute":
            return Regions(shift=driving.shift, covar=driving.covar, affine=driving.affine)
        if settings.mode == "relative":
            return relative_regions(source, driving, initial, adapt_movement_scale=settings.adapt_scale)
        return self.avd_network(source.expand(driving.batch_size), driving)

    def render(self, state: EncodedSource, source: Regions, driving: Regions) -> MraaRendered:
        """Frames of the encoded source moved from regions ``source`` to ``driving`` (batch B); the
        background moves by ``driving.background`` when it is set."""
        return self.generator.render(state, source, driving)

    def reconstruct(self, source: Tensor, driving: Tensor) -> MraaRendered:
        """Training and evaluation's forward: ``source`` ``(B, C, H, W)`` moved to the regions of
        ``driving`` (same batch), the background moved by the background predictor."""
        source_regions = self.describe(source)
        driving_regions = self.describe(driving)
        if self.bg_predictor is not None:
            driving_regions = dataclasses.replace(driving_regions, background=self.bg_predictor(source, driving))
        return self.render(self.encode_source(source), source_regions, driving_regions)


def build_mraa_model(config: MraaConfig, device: Optional[torch.device | str] = None) -> MraaModel:
    """Freshly initialised networks for ``config`` (on ``device``, CPU by default)."""
    model = MraaModel(config)
    return model.to(device) if device is not None else model
