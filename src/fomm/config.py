"""Typed configuration, read from the original First Order Motion Model YAML layout.

The YAML files of the original code (``dataset_params``, ``model_params``, ``train_params``,
``reconstruction_params``, ``animate_params``, ``visualizer_params``) load unchanged. Every
section is a pydantic model that forbids unknown keys, so a typo such as ``temprature`` is an
error that names the key and the file instead of a silently ignored setting.

Keys that the original code did not have are ours and always optional, so an original config
never needs editing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

__all__ = [
    "ConfigError",
    "ConfigFile",
    "DatasetParams",
    "FommConfig",
    "ModelParams",
    "PointTransferParams",
    "TrainAvdParams",
    "TrainParams",
    "read_config_file",
]


class _Section(BaseModel):
    """Base for every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------------------------
# dataset_params


class FlipParams(_Section):
    horizontal_flip: bool = False
    time_flip: bool = False


class JitterParams(_Section):
    brightness: float = Field(0.0, ge=0)
    contrast: float = Field(0.0, ge=0)
    saturation: float = Field(0.0, ge=0)
    hue: float = Field(0.0, ge=0, le=0.5)


class CropParams(_Section):
    size: tuple[int, int]


class ResizeParams(_Section):
    ratio: tuple[float, float]


class RotationParams(_Section):
    degrees: float


class AugmentationParams(_Section):
    """The original ``AllAugmentationTransform`` options, applied in the original's order:
    flip, rotation, resize, crop, colour jitter."""

    flip_param: Optional[FlipParams] = None
    rotation_param: Optional[RotationParams] = None
    resize_param: Optional[ResizeParams] = None
    crop_param: Optional[CropParams] = None
    jitter_param: Optional[JitterParams] = None


class DatasetParams(_Section):
    root_dir: str
    frame_shape: tuple[int, int, int] = (256, 256, 3)
    id_sampling: bool = False
    pairs_list: Optional[str] = None
    augmentation_params: Optional[AugmentationParams] = None
    # Ours: the seed of the train/test split when the dataset has no train/ and test/ folders,
    # the fraction of videos kept for test in that case, and an in-memory cache of decoded frames.
    random_seed: int = 0
    test_fraction: float = Field(0.2, gt=0, lt=1)
    cache_frames: bool = False
    # Ours (flow consistency, see fomm.models.losses): share of training samples that are nearby frames.
    nearby_pair_ratio: float = Field(0.0, ge=0, le=1)
    nearby_pair_max_gap: int = Field(2, ge=1)
    # Ours: optical flow between source and driving in the data workers (set automatically when
    # loss_weights.flow_consistency > 0), and a per-video cache of it (used without augmentation).
    compute_flow: bool = False
    cache_flow: bool = False
    # Ours: share of training samples that are cross-identity pairs with ground truth (the
    # dataset's cross-train/ folder, `fomm make-dataset --train-cross-pairs`): figure A's first
    # frame animated by figure B's motion relative to B's first frame, compared with the truth.
    cross_pair_ratio: float = Field(0.0, ge=0, le=1)

    @field_validator("frame_shape")
    @classmethod
    def _positive_shape(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if min(value) <= 0:
            raise ValueError(f"frame_shape must be positive, got {list(value)}")
        return value


# --------------------------------------------------------------------------------------------
# model_params


class CommonParams(_Section):
    num_kp: int = Field(gt=0)
    num_channels: int = Field(3, gt=0)
    estimate_jacobian: bool = False


class KeypointDetectorParams(_Section):
    temperature: float = Field(gt=0)
    block_expansion: int = Field(gt=0)
    max_features: int = Field(gt=0)
    num_blocks: int = Field(gt=0)
    scale_factor: float = Field(1.0, gt=0, le=1)
    single_jacobian_map: bool = False
    pad: int = Field(0, ge=0)


class DenseMotionParams(_Section):
    block_expansion: int = Field(gt=0)
    max_features: int = Field(gt=0)
    num_blocks: int = Field(gt=0)
    scale_factor: float = Field(1.0, gt=0, le=1)
    kp_variance: float = Field(0.01, gt=0)


class GeneratorParams(_Section):
    block_expansion: int = Field(gt=0)
    max_features: int = Field(gt=0)
    num_down_blocks: int = Field(ge=0)
    num_bottleneck_blocks: int = Field(ge=0)
    estimate_occlusion_map: bool = False
    dense_motion_params: Optional[DenseMotionParams] = None
    #: Ours. How the dense motion's deformation is brought to the feature and image resolutions:
    #: ``coordinates`` (the original: interpolate the absolute coordinates, which shifts them by a
    #: fraction of a pixel even for no motion) or ``displacement`` (interpolate the displacement:
    #: no motion stays the identity; see :func:`fomm.geometry.resize_displacement`).
    deformation_upsampling: Literal["coordinates", "displacement"] = "coordinates"
    #: Ours. What the generator outputs: ``decoded`` (the original: the decoder's image) or
    #: ``occlusion`` (``O * warp(source) + (1 - O) * decoded``, the occlusion map, resized to the
    #: image, choosing per pixel between the warped source and the decoder; the decoder then only
    #: has to inpaint what the source does not show). ``occlusion`` adds no parameters and needs
    #: ``estimate_occlusion_map``.
    output_blend: Literal["decoded", "occlusion"] = "decoded"

    @model_validator(mode="after")
    def _blend_needs_occlusion(self) -> "GeneratorParams":
        if self.output_blend == "occlusion" and not (self.estimate_occlusion_map and self.dense_motion_params):
            raise ValueError("output_blend 'occlusion' blends by the occlusion map: it needs "
                             "estimate_occlusion_map True and a dense_motion_params section")
        return self


#: Image-pyramid scales: at least one, each in (0, 1] (1 is the full image).
PyramidScales = Annotated[list[Annotated[float, Field(gt=0, le=1)]], Field(min_length=1)]


class DiscriminatorParams(_Section):
    scales: PyramidScales = [1.0]
    block_expansion: int = Field(64, gt=0)
    max_features: int = Field(512, gt=0)
    num_blocks: int = Field(4, gt=0)
    sn: bool = False
    use_kp: bool = False
    kp_variance: float = Field(0.01, gt=0)


#: The seed proposal's residual mix (``graph_params.style: seed``), its default there.
SEED_GRAPH_MIX_WEIGHT = 0.3


class GraphParams(_Section):
    """Ours: keypoints refined as a graph by attention with a learned adjacency.

    ``style``: ``improved`` (multi-head, rich node features, refines jacobians too) or ``seed``
    (the seed proposal: one head on the raw coordinates, sigmoid adjacency as a soft mask, values
    only; see :mod:`fomm.models.fomm.graph`). A ``seed`` section takes ``mix_weight: 0.3``,
    ``num_heads: 1`` and ``refine_jacobian: False`` unless given, and rejects other head counts or
    jacobian refinement. These defaults apply when the section is read or built; assigning
    ``style`` on an existing section keeps its other values (and is rejected where they conflict).
    """

    enabled: bool = True
    style: Literal["improved", "seed"] = "improved"
    num_heads: int = Field(2, gt=0)
    hidden_features: int = Field(64, gt=0)
    mix_weight: float = Field(0.5, ge=0)
    refine_jacobian: bool = True
    adjacency_threshold: float = Field(0.1, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _seed_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("style") == "seed":
            data = {"mix_weight": SEED_GRAPH_MIX_WEIGHT, "num_heads": 1, "refine_jacobian": False, **data}
        return data

    @model_validator(mode="after")
    def _seed_is_single_head_values_only(self) -> "GraphParams":
        if self.style == "seed" and (self.num_heads != 1 or self.refine_jacobian):
            raise ValueError(f"style 'seed' has one attention head and refines values only: it needs num_heads 1 "
                             f"and refine_jacobian False (got {self.num_heads} and {self.refine_jacobian})")
        return self


class PointTransferParams(_Section):
    """Ours: a learned correction of relative motion (:mod:`fomm.models.fomm.point_transfer`):
    ``num_layers`` linear layers of ``hidden_features`` read the source, initial and current
    driving keypoints, and a last one gives the correction. Trained by
    ``scripts/learned_transfer.py``, not by ``fomm train``."""

    hidden_features: int = Field(512, gt=0)
    num_layers: int = Field(3, gt=0)


class ModelParams(_Section):
    common_params: CommonParams
    kp_detector_params: KeypointDetectorParams
    generator_params: GeneratorParams
    discriminator_params: DiscriminatorParams = DiscriminatorParams()
    graph_params: Optional[GraphParams] = None
    point_transfer_params: Optional[PointTransferParams] = None

    @model_validator(mode="after")
    def _point_transfer_needs_jacobians(self) -> "ModelParams":
        if self.point_transfer_params is not None and not self.common_params.estimate_jacobian:
            raise ValueError("point_transfer_params: the learned point transfer reads and corrects jacobians: it "
                             "needs common_params.estimate_jacobian True")
        return self


# --------------------------------------------------------------------------------------------
# train_params


class TransformParams(_Section):
    """The random affine + thin-plate-spline transform of the equivariance constraints."""

    sigma_affine: float = Field(ge=0)
    sigma_tps: Optional[float] = Field(None, ge=0)
    points_tps: Optional[int] = Field(None, gt=1)


class LossWeights(_Section):
    generator_gan: float = 0.0
    discriminator_gan: float = 1.0
    feature_matching: list[float] = []
    perceptual: list[float] = []
    equivariance_value: float = 0.0
    equivariance_jacobian: float = 0.0
    flow_consistency: float = 0.0  # ours
    #: Ours. The reconstruction loss once more (the same ``perceptual`` weights and pyramid), times
    #: this factor, on the decoder's own image before ``output_blend: occlusion`` mixes in the
    #: warped source. The blended output hides the decoder where the occlusion map is near 1, so
    #: nothing else asks it to draw what the warp cannot place.
    decoded_reconstruction: float = Field(0.0, ge=0)
    #: Ours. On cross pairs (``dataset_params.cross_pair_ratio``), the L1 distance, times this factor,
    #: between the driving keypoints moved onto the source by relative motion and the keypoints the
    #: detector finds on the truth frame (values and jacobians). The animation differs from the
    #: source animated by the truth itself only through these keypoints, so this is its whole gap,
    #: named directly instead of reached through the renderer's gradient.
    keypoint_transfer: float = Field(0.0, ge=0)


#: ``train_params.mixed_precision`` of every family: the arithmetic of training.
MixedPrecision = Literal["no", "auto", "bf16", "fp16"]


class OurTrainingOptions(_Section):
    """What every family's ``train_params`` accepts beyond its original: the perceptual loss's
    features (VGG19, or the pyramid images themselves; fomm.models.losses.PerceptualLoss), where the
    VGG19 weights are, the seed, and the arithmetic. ``mixed_precision``: no is float32 (the
    original's arithmetic, exact); bf16/fp16 autocast with float32 weights and losses; auto (the
    default, published configs included) is bf16 where the device has it and a probe measures it
    faster, else float32 (fomm.training.precision; docs/benchmarks.md shows bf16's loss curves
    following float32's)."""

    perceptual_backbone: Literal["vgg19", "pixel"] = "vgg19"
    vgg19_weights: Optional[str] = None
    seed: int = 0
    mixed_precision: MixedPrecision = "auto"


class TrainParams(OurTrainingOptions):
    num_epochs: int = Field(gt=0)
    num_repeats: int = Field(1, gt=0)
    epoch_milestones: list[int] = []
    lr_generator: float = Field(2e-4, ge=0)
    lr_discriminator: float = Field(2e-4, ge=0)
    lr_kp_detector: float = Field(2e-4, ge=0)
    batch_size: int = Field(gt=0)
    scales: PyramidScales = [1.0]
    checkpoint_freq: int = Field(1, gt=0)
    transform_params: Optional[TransformParams] = None
    loss_weights: LossWeights = LossWeights()
    # Ours, beside OurTrainingOptions.
    grad_clip: Optional[float] = Field(None, gt=0)
    num_workers: int = Field(0, ge=0)


# --------------------------------------------------------------------------------------------
# the jobs


#: Where the original wrote ``.png`` (a horizontal strip of frames), ``.mp4`` or ``.gif``.
OutputFormat = Literal[".mp4", ".mov", ".mkv", ".gif", ".png"]


class TrainAvdParams(_Section):
    """The AVD stage of TPSMM and MRAA (their ``train_avd.py``), after the motion networks are
    trained: only the AVD network trains, to rebuild a driving frame's points (TPSMM's keypoints,
    MRAA's regions) from the pose of a copy rescaled by a random factor in ``1 +- random_scale``
    per axis and the identity of a source. ``lambda_shift`` weighs the positions;
    ``lambda_affine`` the regions' affine parts (MRAA; in TPSMM's published mgif config its
    original code never reads it)."""

    num_epochs: int = Field(gt=0)
    num_repeats: int = Field(1, gt=0)
    batch_size: int = Field(gt=0)
    dataloader_workers: int = Field(0, ge=0)
    checkpoint_freq: int = Field(1, gt=0)
    epoch_milestones: list[int] = []
    lr: float = Field(1e-3, ge=0)
    lambda_shift: float = Field(1.0, ge=0)
    lambda_affine: float = Field(1.0, ge=0)
    random_scale: float = Field(0.25, ge=0, lt=1)


class ReconstructionParams(_Section):
    num_videos: Optional[int] = None
    format: OutputFormat = ".mp4"  # of the videos `fomm evaluate --out` writes


class NormalizationParams(_Section):
    adapt_movement_scale: bool = False
    use_relative_movement: bool = True
    use_relative_jacobian: bool = True


class AnimateParams(_Section):
    num_pairs: int = Field(50, ge=1)
    format: OutputFormat = ".mp4"  # of the videos `fomm animate --dataset` writes
    # The defaults of `fomm animate` for models of this config (the original normalize_kp flags).
    normalization_params: NormalizationParams = NormalizationParams()


class VisualizerParams(_Section):
    kp_size: int = 5
    draw_border: bool = True  # a thin white frame around each panel of side-by-side pictures
    colormap: str = "gist_rainbow"


class ConfigFile(_Section):
    """Base of every family's whole config file: validation from a plain dictionary (with errors
    that name the key), the dictionary back in the original layout, and reading a YAML file."""

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> Self:
        """Validate a plain dictionary; ``source`` names it in error messages."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: a config must be a mapping of sections, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise ConfigError(_describe_errors(error, source)) from None

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a YAML config of this schema; a packaged config's name also works.
        (:func:`fomm.models.registry.load_config` reads a config of any family.)"""
        data, resolved = read_config_file(path)
        return cls.from_dict(data, source=str(resolved))

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary in the original layout (what checkpoints embed)."""
        return self.model_dump(mode="json", exclude_none=True)


class FommConfig(ConfigFile):
    """A whole FOMM config file. ``model_params`` is the only section every use needs."""

    dataset_params: Optional[DatasetParams] = None
    model_params: ModelParams
    train_params: Optional[TrainParams] = None
    reconstruction_params: ReconstructionParams = ReconstructionParams()
    animate_params: AnimateParams = AnimateParams()
    visualizer_params: VisualizerParams = VisualizerParams()

    @model_validator(mode="after")
    def _decoded_loss_needs_blend(self) -> "FommConfig":
        weights = self.train_params.loss_weights if self.train_params else None
        if weights is None or weights.decoded_reconstruction == 0:
            return self
        if self.model_params.generator_params.output_blend != "occlusion":
            raise ValueError("train_params.loss_weights.decoded_reconstruction weighs the decoder's image before the "
                             "occlusion blend: it needs model_params.generator_params.output_blend: occlusion "
                             "(without the blend the reconstruction loss already sees the decoder's image)")
        if not any(weights.perceptual):
            raise ValueError("train_params.loss_weights.decoded_reconstruction scales the perceptual loss: "
                             "train_params.loss_weights.perceptual needs a non-zero weight")
        return self

    @model_validator(mode="after")
    def _keypoint_transfer_needs_cross_pairs(self) -> "FommConfig":
        weights = self.train_params.loss_weights if self.train_params else None
        if weights is None or weights.keypoint_transfer == 0 or self.dataset_params is None:
            return self
        if self.dataset_params.cross_pair_ratio == 0:
            raise ValueError("train_params.loss_weights.keypoint_transfer compares keypoints moved by relative motion "
                             "with the truth of cross pairs: it needs dataset_params.cross_pair_ratio > 0 (and a "
                             "dataset written with fomm make-dataset --train-cross-pairs N)")
        return self


def _describe_errors(error: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            lines.append(f"  unknown key '{key}' (check its spelling and section)")
        elif item["type"] == "missing":
            lines.append(f"  missing key '{key}'")
        else:
            lines.append(f"  key '{key}': {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


#: The published configs (and the synthetic ones) ship inside the package.
PACKAGED_CONFIGS = Path(__file__).parent / "configs"


def packaged_config_names() -> list[str]:
    """Names of the configs that ship with the package (``vox-256``, ``sprites-64``, ...)."""
    return sorted(path.stem for path in PACKAGED_CONFIGS.glob("*.yaml"))


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A config file: ``name_or_path`` when that file exists, else the packaged config of that
    name (``vox-256`` or ``vox-256.yaml``), so a packaged config works from any folder."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = PACKAGED_CONFIGS / (path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
    if packaged.is_file() and (path.parent == Path(".") or path.parent.name == "configs"):
        return packaged
    raise ConfigError(f"config file not found: {name_or_path} (a path, or one of the packaged configs: "
                      f"{', '.join(packaged_config_names())})")


def read_config_file(path: str | Path) -> tuple[Any, Path]:
    """The parsed YAML of a config file (a path, or a packaged config's name) and the file it came
    from. Which family's schema it follows is decided by :func:`fomm.models.registry.load_config`."""
    path = resolve_config_path(path)
    try:
        return yaml.safe_load(path.read_text()), path
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML config (not UTF-8 text)") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it: {error.strerror or error}") from None
