"""fomm: the First Order Motion Model for image animation (Siarohin et al., NeurIPS 2019).

Public entry points::

    import fomm
    model = fomm.load_checkpoint("vox-cpk.pth.tar", config="configs/vox-256.yaml")
    kp_source = model.kp_detector(source)                  # Keypoints(value, jacobian)
    out = model.generator(source, kp_source=kp_source, kp_driving=kp_driving)
    kp = fomm.relative_keypoints(kp_source, kp_driving, kp_driving_initial)
"""

from .checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from .config import ConfigError, FommConfig, load_config
from .device import resolve_device
from .models import FommModel, GeneratorOutput, Keypoints, build_model
from .keypoints import relative_keypoints

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "FommConfig",
    "FommModel",
    "GeneratorOutput",
    "Keypoints",
    "build_model",
    "load_checkpoint",
    "load_config",
    "read_checkpoint",
    "relative_keypoints",
    "resolve_device",
    "save_checkpoint",
]
