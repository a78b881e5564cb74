"""Typed configuration of the MRAA family, read from the original repository's YAML layout.

The YAML files of ``snap-research/articulated-animation`` (``dataset_params``, ``model_params``,
``train_params``, ``train_avd_params``, ``reconstruction_params``, ``animate_params``,
``visualizer_params``) load unchanged. As in :mod:`fomm.config`, every section forbids unknown
keys, so a misspelt key is an error naming the key and the file. The dataset, reconstruction and
visualizer sections are the shared ones of :mod:`fomm.config`, widened only where the MRAA layout
has more (``frame_shape: null``, ``region_bg_color``).

Keys marked "ours" are not in the original layout and are always optional.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from ...config import (
    ConfigFile,
    TrainAvdParams,
    OurTrainingOptions,
    DatasetParams,
    OutputFormat,
    PyramidScales,
    ReconstructionParams,
    TransformParams,
    VisualizerParams,
    _Section,
)

__all__ = [
    "AvdNetworkParams",
    "BgPredictorParams",
    "MraaAnimateParams",
    "MraaConfig",
    "MraaDatasetParams",
    "MraaGeneratorParams",
    "MraaLossWeights",
    "MraaModelParams",
    "MraaTrainParams",
    "MraaVisualizerParams",
    "PixelwiseFlowPredictorParams",
    "RegionPredictorParams",
]


# --------------------------------------------------------------------------------------------
# dataset_params


class MraaDatasetParams(DatasetParams):
    """:class:`fomm.config.DatasetParams`, where ``frame_shape`` may be null as in every published
    MRAA config (the original then reads frames at the size they are stored). A model of such a
    config assumes 256x256 (see :attr:`fomm.models.family.MotionModel.frame_shape`)."""

    frame_shape: Optional[tuple[int, int, int]] = None  # type: ignore[assignment]

    @field_validator("frame_shape")
    @classmethod
    def _positive_shape(cls, value: Optional[tuple[int, int, int]]) -> Optional[tuple[int, int, int]]:
        if value is not None and min(value) <= 0:
            raise ValueError(f"frame_shape must be positive, got {list(value)}")
        return value


# --------------------------------------------------------------------------------------------
# model_params


class RegionPredictorParams(_Section):
    """The region predictor: an hourglass on a downscaled image, then a conv to K heatmaps.

    ``pca_based``: region shape from the heatmap's covariance (its SVD); otherwise, with
    ``model_params.estimate_affine``, regressed like FOMM's jacobians. ``fast_svd`` chose a CUDA
    batched-SVD package in the original; the decomposition is the same, so here it is accepted and
    torch's SVD is used either way. ``pad`` is the padding of the 7x7 heatmap conv (the published
    taichi, ted and mgif configs use 0: heatmaps 6 pixels smaller than the hourglass output).
    """

    temperature: float = Field(gt=0)
    block_expansion: int = Field(gt=0)
    max_features: int = Field(gt=0)
    num_blocks: int = Field(gt=0)
    scale_factor: float = Field(1.0, gt=0, le=1)
    pca_based: bool = False
    fast_svd: bool = False
    pad: int = Field(3, ge=0)


class BgPredictorParams(_Section):
    """The background motion predictor: an encoder on source and driving side by side, then a
    linear layer to one transform of the whole frame. ``bg_type`` ``zero`` has no parameters and
    predicts the identity."""

    block_expansion: int = Field(gt=0)
    max_features: int = Field(gt=0)
    num_blocks: int = Field(gt=0)
    bg_type: Literal["zero", "shift", "affine", "perspective"] = "zero"


class PixelwiseFlowPredictorParams(_Section):
    """The pixelwise flow predictor: an hourglass on region heatmaps and the source warped by
    every region's motion, predicting the per-pixel mixture of those motions and the occlusion.

    ``use_covar_heatmap``: region heatmaps are gaussians with the regions' covariances (else
    isotropic with variance ``region_var``, a constructor argument of the original that no
    published config sets)."""

    block_expansion: int = Field(gt=0)
    max_features: int = Field(gt=0)
    num_blocks: int = Field(gt=0)
    scale_factor: float = Field(1.0, gt=0, le=1)
    use_deformed_source: bool = True
    use_covar_heatmap: bool = False
    estimate_occlusion_map: bool = False
    region_var: float = Field(0.01, gt=0)


class MraaGeneratorParams(_Section):
    """The generator (Johnson architecture): encoder, bottleneck of residual blocks, decoder.
    ``skips``: every encoder level is warped, masked by the occlusion and blended into the decoder,
    and the output is blended with the warped source image."""

    block_expansion: int = Field(gt=0)
    max_features: int = Field(gt=0)
    num_down_blocks: int = Field(ge=0)
    num_bottleneck_blocks: int = Field(ge=0)
    skips: bool = False
    pixelwise_flow_predictor_params: Optional[PixelwiseFlowPredictorParams] = None


class AvdNetworkParams(_Section):
    """Animation via disentanglement: sizes of the identity and pose bottlenecks."""

    id_bottle_size: int = Field(64, gt=0)
    pose_bottle_size: int = Field(64, gt=0)


class MraaModelParams(_Section):
    """``estimate_affine``: regions carry an affine map (from PCA with ``pca_based``, else
    regressed). ``revert_axis_swap``: SVD may swap or flip a region's axes between source and
    driving; the generator undoes a flip by the sign of the transform's top-left entry.
    ``avd_network_params`` null: no AVD network (ours: the original always built one)."""

    num_regions: int = Field(gt=0)
    num_channels: int = Field(3, gt=0)
    estimate_affine: bool = False
    revert_axis_swap: bool = False
    bg_predictor_params: BgPredictorParams
    region_predictor_params: RegionPredictorParams
    generator_params: MraaGeneratorParams
    avd_network_params: Optional[AvdNetworkParams] = None

    @model_validator(mode="after")
    def _covar_heatmap_needs_covariance(self) -> "MraaModelParams":
        flow = self.generator_params.pixelwise_flow_predictor_params
        has_covariance = self.region_predictor_params.pca_based or self.estimate_affine
        if flow is not None and flow.use_covar_heatmap and not has_covariance:
            raise ValueError("use_covar_heatmap draws regions with their covariance: it needs "
                             "region_predictor_params.pca_based or estimate_affine")
        return self


# --------------------------------------------------------------------------------------------
# train_params, train_avd_params


class MraaLossWeights(_Section):
    perceptual: list[float] = []
    equivariance_shift: float = 0.0
    equivariance_affine: float = 0.0


class MraaTrainParams(OurTrainingOptions):
    """The reconstruction stage: region predictor, background predictor and generator together,
    one Adam optimiser (``lr``), learning rate divided by 10 at ``epoch_milestones``."""

    num_epochs: int = Field(gt=0)
    num_repeats: int = Field(1, gt=0)
    epoch_milestones: list[int] = []
    lr: float = Field(2e-4, ge=0)
    batch_size: int = Field(gt=0)
    use_sync_bn: bool = False
    dataloader_workers: int = Field(0, ge=0)
    checkpoint_freq: int = Field(1, gt=0)
    scales: PyramidScales = [1.0]
    transform_params: Optional[TransformParams] = None
    loss_weights: MraaLossWeights = MraaLossWeights()

    @model_validator(mode="after")
    def _equivariance_needs_a_transform(self) -> "MraaTrainParams":
        weights = self.loss_weights
        if (weights.equivariance_shift or weights.equivariance_affine) and self.transform_params is None:
            raise ValueError("equivariance losses need train_params.transform_params")
        return self


# --------------------------------------------------------------------------------------------
# the jobs


class MraaAnimateParams(_Section):
    """``mode``: the original's animation modes: ``standard`` (absolute motion), ``relative`` or
    ``avd``."""

    num_pairs: int = Field(50, ge=1)
    format: OutputFormat = ".mp4"
    mode: Literal["standard", "relative", "avd"] = "relative"


class MraaVisualizerParams(VisualizerParams):
    """:class:`fomm.config.VisualizerParams` and the colour behind drawn regions."""

    region_bg_color: tuple[float, float, float] = (1.0, 1.0, 1.0)


class MraaConfig(ConfigFile):
    """A whole MRAA config file. ``model_params`` is the only section every use needs."""

    dataset_params: Optional[MraaDatasetParams] = None
    model_params: MraaModelParams
    train_params: Optional[MraaTrainParams] = None
    train_avd_params: Optional[TrainAvdParams] = None
    reconstruction_params: ReconstructionParams = ReconstructionParams()
    animate_params: MraaAnimateParams = MraaAnimateParams()
    visualizer_params: MraaVisualizerParams = MraaVisualizerParams()
