"""Typed configuration of the Thin-Plate Spline Motion Model, in the original YAML layout.

The published configs of github.com/yoyo-nb/Thin-Plate-Spline-Motion-Model (``vox-256``,
``taichi-256``, ``ted-384``, ``mgif-256``) load unchanged: ``dataset_params``, ``model_params``
(``common_params``, ``generator_params``, ``dense_motion_params``, ``avd_network_params``),
``train_params``, ``train_avd_params`` and ``visualizer_params``. ``animate_params`` and
``reconstruction_params`` are ours and optional. As in :mod:`fomm.config`, every section forbids
unknown keys, so a misspelt key is an error naming it instead of a silently ignored setting.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from ...config import (
    ConfigFile,
    TrainAvdParams,
    OurTrainingOptions,
    DatasetParams,
    OutputFormat,
    PyramidScales,
    ReconstructionParams,
    VisualizerParams,
    _Section,
)

__all__ = [
    "AvdNetworkParams",
    "CommonParams",
    "DenseMotionParams",
    "GeneratorParams",
    "ModelParams",
    "TpsmmAnimateParams",
    "TpsmmConfig",
    "TpsmmDatasetParams",
    "TrainParams",
]

#: What ``frame_shape: null`` (every published TPSMM config) stands for: the original reads frames
#: at their stored size, and the published models were trained on 256x256 frames (TED on 384x384).
DEFAULT_FRAME_SHAPE = (256, 256, 3)
#: The inpainting network always blends with four occlusion masks when ``multi_mask`` is on.
MULTI_MASK_LEVELS = 4


class TpsmmDatasetParams(DatasetParams):
    """:class:`fomm.config.DatasetParams`, accepting the original ``frame_shape: null``
    (read as :data:`DEFAULT_FRAME_SHAPE`)."""

    @field_validator("frame_shape", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any) -> Any:
        return DEFAULT_FRAME_SHAPE if value is None else value


class CommonParams(_Section):
    """``num_tps``: K, the number of thin-plate-spline transforms (each from 5 keypoints).
    ``bg``: whether a background motion predictor estimates an affine background transform.
    ``multi_mask``: occlusion masks at four resolutions (else one, resized where needed)."""

    num_tps: int = Field(gt=0)
    num_channels: int = Field(3, gt=0)
    bg: bool = False
    multi_mask: bool = True


class GeneratorParams(_Section):
    """The inpainting network's encoder/decoder widths and depth."""

    block_expansion: int = Field(gt=0)
    max_features: int = Field(gt=0)
    num_down_blocks: int = Field(gt=0)


class DenseMotionParams(_Section):
    """The dense motion hourglass; it runs on images downsampled by ``scale_factor``."""

    block_expansion: int = Field(gt=0)
    max_features: int = Field(gt=0)
    num_blocks: int = Field(gt=0)
    scale_factor: float = Field(0.25, gt=0, le=1)
    kp_variance: float = Field(0.01, gt=0)


class AvdNetworkParams(_Section):
    """Bottleneck widths of the AVD (animation via disentanglement) network's two encoders."""

    id_bottle_size: int = Field(64, gt=0)
    pose_bottle_size: int = Field(64, gt=0)


class ModelParams(_Section):
    common_params: CommonParams
    generator_params: GeneratorParams
    dense_motion_params: DenseMotionParams
    avd_network_params: Optional[AvdNetworkParams] = None

    @model_validator(mode="after")
    def _occlusion_levels_fit(self) -> "ModelParams":
        """With ``multi_mask`` the dense motion network predicts masks at 1/8, 1/4, 1/2 and 1 of
        the image size, taken from the last hourglass levels and from 2x upsamplings of the last
        one; the inpainting network must have a feature map at each of those sizes."""
        if not self.common_params.multi_mask:
            return self
        upsamplings = math.log2(1 / self.dense_motion_params.scale_factor)
        if not upsamplings.is_integer() or upsamplings > MULTI_MASK_LEVELS:
            raise ValueError(f"multi_mask needs dense_motion_params.scale_factor 1, 1/2, 1/4, 1/8 or 1/16, "
                             f"got {self.dense_motion_params.scale_factor}")
        from_hourglass = MULTI_MASK_LEVELS - int(upsamplings)
        if self.dense_motion_params.num_blocks < from_hourglass:
            raise ValueError(f"multi_mask with scale_factor {self.dense_motion_params.scale_factor} takes "
                             f"{from_hourglass} occlusion masks from the hourglass: dense_motion_params.num_blocks "
                             f"must be at least {from_hourglass}, got {self.dense_motion_params.num_blocks}")
        if self.generator_params.num_down_blocks != MULTI_MASK_LEVELS - 1:
            raise ValueError(f"multi_mask blends {MULTI_MASK_LEVELS} feature levels: generator_params.num_down_blocks "
                             f"must be {MULTI_MASK_LEVELS - 1}, got {self.generator_params.num_down_blocks}")
        return self


class TransformParams(_Section):
    """The random TPS warp of the equivariance loss: an affine part with N(0, sigma_affine) noise
    and ``points_tps x points_tps`` control points with N(0, sigma_tps) weights."""

    sigma_affine: float = Field(ge=0)
    sigma_tps: float = Field(ge=0)
    points_tps: int = Field(gt=1)


class LossWeights(_Section):
    perceptual: list[float] = []
    equivariance_value: float = 0.0
    warp_loss: float = 0.0
    bg: float = 0.0


class TrainParams(OurTrainingOptions):
    """Training of the motion and inpainting networks (the original ``train.py``).

    Transform dropout (section 3.4 of the paper): before ``dropout_epoch``, each TPS transform is
    dropped with probability ``min(startp + epoch / inc_epoch * maxp, maxp)``. The background
    predictor and its loss start at ``bg_start``.
    """

    num_epochs: int = Field(gt=0)
    num_repeats: int = Field(1, gt=0)
    epoch_milestones: list[int] = []
    lr_generator: float = Field(2e-4, ge=0)
    batch_size: int = Field(gt=0)
    scales: PyramidScales = [1.0]
    dataloader_workers: int = Field(0, ge=0)
    checkpoint_freq: int = Field(1, gt=0)
    dropout_epoch: int = Field(0, ge=0)
    dropout_maxp: float = Field(0.0, ge=0, lt=1)
    dropout_startp: float = Field(0.0, ge=0, lt=1)
    dropout_inc_epoch: int = Field(1, gt=0)
    bg_start: int = Field(0, ge=0)
    transform_params: Optional[TransformParams] = None
    loss_weights: LossWeights = LossWeights()

    @model_validator(mode="after")
    def _equivariance_has_a_warp(self) -> "TrainParams":
        if self.loss_weights.equivariance_value != 0 and self.transform_params is None:
            raise ValueError("loss_weights.equivariance_value is non-zero but transform_params "
                             "(sigma_affine, sigma_tps, points_tps) is missing")
        return self


class TpsmmAnimateParams(_Section):
    """Ours: the defaults of an animation with a model of this config. The original demo's
    ``relative`` mode always scales the motion by the convex-hull areas (``adapt_movement_scale``)."""

    num_pairs: int = Field(50, ge=1)
    format: OutputFormat = ".mp4"
    mode: Literal["relative", "absolute", "avd"] = "relative"
    adapt_movement_scale: bool = True


class TpsmmConfig(ConfigFile):
    """A whole TPSMM config file; ``model_params`` is the only section every use needs."""

    dataset_params: Optional[TpsmmDatasetParams] = None
    model_params: ModelParams
    train_params: Optional[TrainParams] = None
    train_avd_params: Optional[TrainAvdParams] = None
    visualizer_params: VisualizerParams = VisualizerParams()
    animate_params: TpsmmAnimateParams = TpsmmAnimateParams()
    reconstruction_params: ReconstructionParams = ReconstructionParams()
