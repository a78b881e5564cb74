"""fomm: the First Order Motion Model for image animation (Siarohin et al., NeurIPS 2019).

Public entry points::

    import fomm
    model = fomm.load_checkpoint("vox-cpk.pth.tar", config="vox-256")
    frames = fomm.Animator(model, relative=True).animate(source, driving)   # (T, 3, H, W) in [0, 1]
    kp_source = model.kp_detector(source)                  # Keypoints(value, jacobian)
    out = model.generator(source, kp_source=kp_source, kp_driving=kp_driving)
    kp = fomm.relative_keypoints(kp_source, kp_driving, kp_driving_initial)
"""

from .animate import Animator
from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .config import FommConfig
from .device import resolve_device
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DeviceError,
    OutputPathError,
    UserError,
    VideoReadError,
    VideoWriteError,
)
from .models import (FommModel, GeneratorOutput, KeypointDetection, Keypoints, MotionModel, MotionSettings, Rendered,
                     build_model, load_config)
from .models.fomm import relative_keypoints

__version__ = "0.2.0"

__all__ = [
    "Animator",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DeviceError",
    "FommConfig",
    "FommModel",
    "GeneratorOutput",
    "KeypointDetection",
    "Keypoints",
    "MotionModel",
    "MotionSettings",
    "OutputPathError",
    "UserError",
    "VideoReadError",
    "VideoWriteError",
    "build_model",
    "load_checkpoint",
    "load_config",
    "read_checkpoint",
    "Rendered",
    "relative_keypoints",
    "resolve_device",
    "save_checkpoint",
]
