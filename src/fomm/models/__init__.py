"""The networks of the First Order Motion Model and the :class:`FommModel` that holds them."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..config import FommConfig
from .blocks import ImagePyramid
from .discriminator import DiscriminatorOutput, MultiScaleDiscriminator
from .generator import Generator, GeneratorOutput, SourceFeatures
from ..keypoints import Keypoints
from .detector import KeypointDetection, KeypointDetector
from .motion import DenseMotion, Motion

__all__ = [
    "DenseMotion",
    "DiscriminatorOutput",
    "FommModel",
    "Generator",
    "GeneratorOutput",
    "ImagePyramid",
    "KeypointDetection",
    "KeypointDetector",
    "Keypoints",
    "Motion",
    "MultiScaleDiscriminator",
    "SourceFeatures",
    "build_model",
]


class FommModel(nn.Module):
    """The three networks of one config, with the config they were built from.

    ``kp_detector``, ``generator`` and ``discriminator`` have the original parameter names, so an
    original checkpoint's state dicts load into them with ``strict=True``. ``epoch`` is the number
    of finished training epochs of the checkpoint this model came from (0 when freshly built).
    """

    def __init__(self, config: FommConfig) -> None:
        super().__init__()
        self.config = config
        params = config.model_params
        self.kp_detector = KeypointDetector(params.common_params, params.kp_detector_params, params.graph_params)
        self.generator = Generator(params.common_params, params.generator_params)
        self.discriminator = MultiScaleDiscriminator(params.common_params, params.discriminator_params)
        self.epoch = 0

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` the model was configured for (256x256x3 when the config has no dataset)."""
        if self.config.dataset_params is None:
            return (256, 256, self.config.model_params.common_params.num_channels)
        return tuple(self.config.dataset_params.frame_shape)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def build_model(config: FommConfig, device: Optional[torch.device | str] = None) -> FommModel:
    """Build freshly initialised networks for ``config`` (on ``device``, CPU by default)."""
    model = FommModel(config)
    return model.to(device) if device is not None else model
