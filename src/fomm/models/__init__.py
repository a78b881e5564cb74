"""The networks of every model family, the interface the pipeline sees them through
(:class:`MotionModel`), and the registry that builds them from configs and checkpoints.

Shared building blocks (``blocks``, ``vgg``) sit here; each family has a folder of its own
(``fomm/``), its files named after the parts of its paper.
"""

from __future__ import annotations

from .blocks import ImagePyramid
from .family import MOTION_MODES, MotionModel, MotionSettings, Rendered
from .fomm import (
    DenseMotion,
    DiscriminatorOutput,
    FommModel,
    Generator,
    GeneratorOutput,
    KeypointDetection,
    KeypointDetector,
    Keypoints,
    Motion,
    MultiScaleDiscriminator,
    SourceFeatures,
)
from .registry import FAMILIES, Family, build_model, family_of, load_config

__all__ = [
    "FAMILIES",
    "MOTION_MODES",
    "DenseMotion",
    "DiscriminatorOutput",
    "Family",
    "FommModel",
    "Generator",
    "GeneratorOutput",
    "ImagePyramid",
    "KeypointDetection",
    "KeypointDetector",
    "Keypoints",
    "Motion",
    "MotionModel",
    "MotionSettings",
    "MultiScaleDiscriminator",
    "Rendered",
    "SourceFeatures",
    "build_model",
    "family_of",
    "load_config",
]
