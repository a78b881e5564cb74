"""The Thin-Plate Spline Motion Model family (Zhao & Zhang, "Thin-Plate Spline Motion Model for
Image Animation", CVPR 2022; original code github.com/yoyo-nb/Thin-Plate-Spline-Motion-Model).

One module per part of the paper: :mod:`.tps` (the transform), :mod:`.keypoint_detector`,
:mod:`.bg_motion_predictor`, :mod:`.dense_motion`, :mod:`.inpainting_network`, :mod:`.avd_network`;
:mod:`.model` puts them behind the family interface, :mod:`.config` reads the original YAML layout,
and :mod:`.objective` (imported on its own: it
needs the losses) holds the training objectives.
"""

from .config import TpsmmConfig
from .model import TpsKeypoints, TpsmmModel, TpsRendered, TpsSource, relative_motion

__all__ = [
    "TpsKeypoints",
    "TpsRendered",
    "TpsSource",
    "TpsmmConfig",
    "TpsmmModel",
    "relative_motion",
]
