"""The First Order Motion Model (Siarohin et al., NeurIPS 2019): keypoints with local affine
jacobians, a dense motion network with an occlusion map, and an occlusion-aware generator."""

from .dense_motion import DenseMotion, Motion
from .discriminator import DiscriminatorOutput, MultiScaleDiscriminator
from .generator import Generator, GeneratorOutput, SourceFeatures
from .keypoint_detector import KeypointDetection, KeypointDetector
from .keypoints import Keypoints, movement_scale, relative_keypoints
from .model import FommModel
from .point_transfer import PointTransfer

__all__ = ["DenseMotion", "DiscriminatorOutput", "FommModel", "Generator", "GeneratorOutput", "KeypointDetection",
           "KeypointDetector", "Keypoints", "Motion", "MultiScaleDiscriminator", "PointTransfer", "SourceFeatures",
           "movement_scale", "relative_keypoints"]
