"""fomm: the First Order Motion Model for image animation (Siarohin et al., NeurIPS 2019).

Public entry points::

    import fomm
    model = fomm.load_checkpoint("vox-cpk.pth.tar", config="vox-256")
    frames = fomm.Animator(model, relative=True).animate(source, driving)   # (T, 3, H, W) in [0, 1]
    kp_source = model.kp_detector(source)                  # Keypoints(value, jacobian)
    out = model.generator(source, kp_source=kp_source, kp_driving=kp_driving)
    kp = fomm.relative_keypoints(kp_source, kp_driving, kp_driving_initial)
"""

from .animate import Animator, MotionSettings
from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .config import FommConfig, load_config
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
from .keypoints import Keypoints, relative_keypoints
from .models import FommModel, GeneratorOutput, KeypointDetection, build_model

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
    "MotionSettings",
    "OutputPathError",
    "UserError",
    "VideoReadError",
    "VideoWriteError",
    "build_model",
    "load_checkpoint",
    "load_config",
    "read_checkpoint",
    "relative_keypoints",
    "resolve_device",
    "save_checkpoint",
]
