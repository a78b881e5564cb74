"""The MRAA family: Motion Representations for Articulated Animation (Siarohin et al., CVPR 2021).

One module per part of the paper: :mod:`.regions` (the motion description and its relative
transfer), :mod:`.region_predictor`, :mod:`.bg_motion_predictor`, :mod:`.pixelwise_flow_predictor`,
:mod:`.generator`, :mod:`.avd_network`; :mod:`.model` puts them behind the family interface,
:mod:`.config` and :mod:`.checkpoint` read the original repository's YAML and checkpoints, and
:mod:`.objective` holds the training objectives. :mod:`.sampling` states the family's resampling
convention (``align_corners=False``, as its published checkpoints were trained).
"""

from __future__ import annotations

from .config import MraaConfig
from .generator import EncodedSource, MraaRendered
from .model import MraaModel, build_mraa_model
from .regions import RegionDetection, Regions, relative_regions

__all__ = [
    "EncodedSource",
    "MraaConfig",
    "MraaModel",
    "MraaRendered",
    "RegionDetection",
    "Regions",
    "build_mraa_model",
    "relative_regions",
]
