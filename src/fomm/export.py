"""ONNX export of the networks used at inference, with a dynamic batch and image size.

Three graphs (``B`` driving frames, one source; ``H`` and ``W`` any multiple of
:func:`size_multiple`):

``kp_detector.onnx``
    ``image (B, C, H, W)`` in [0, 1] -> ``value (B, K, 2)`` [, ``jacobian (B, K, 2, 2)``].
``source_encoder.onnx``
    ``source (1, C, H, W)`` -> ``features (1, F, H / 2^n, W / 2^n)``: run once per source.
``generator.onnx``
    ``source (1, C, H, W)``, ``features``, ``kp_source_value (1, K, 2)`` [, ``kp_source_jacobian``],
    ``kp_driving_value (B, K, 2)`` [, ``kp_driving_jacobian``] -> ``prediction (B, C, H, W)``.

Keypoints are (x, y) in [-1, 1]. Relative motion (:func:`fomm.relative_keypoints`) is a few tensor
operations that callers do between the detector and the generator. Uses torch's dynamo-based
exporter (needs ``onnxscript``); the TorchScript exporter mistranslates the strided anti-alias
downsampling. Sampling keeps ``align_corners=True`` (ONNX GridSample).
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .errors import UserError
from .io import staged_outputs
from .keypoints import Keypoints
from .models import FommModel, SourceFeatures

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_OPSET", "EXPORT_FORMAT", "ExportResult", "OnnxFiles", "check_onnx", "export_onnx",
           "size_multiple"]

DEFAULT_OPSET = 18
#: Version of the graphs' inputs and outputs; part of the key of cached exports.
EXPORT_FORMAT = 2


@dataclass(frozen=True)
class OnnxFiles:
    """The three graph files of one export."""

    kp_detector: Path
    source_encoder: Path
    generator: Path

    @classmethod
    def in_folder(cls, folder: Path) -> "OnnxFiles":
        return cls(folder / "kp_detector.onnx", folder / "source_encoder.onnx", folder / "generator.onnx")

    def all(self) -> tuple[Path, Path, Path]:
        return (self.kp_detector, self.source_encoder, self.generator)

    def exist(self) -> bool:
        return all(path.is_file() for path in self.all())


@dataclass
class ExportResult:
    files: OnnxFiles
    max_error: Optional[float]  # onnxruntime vs torch on random inputs; None if not checked


def size_multiple(model: FommModel) -> int:
    """Image heights and widths the networks accept are multiples of this: each downscaled
    hourglass input must halve ``num_blocks`` times, and the generator ``num_down_blocks`` times."""
    params = model.config.model_params
    multiples = [2 ** params.generator_params.num_down_blocks]
    detector = params.kp_detector_params
    multiples.append(round(1 / detector.scale_factor) * 2 ** detector.num_blocks)
    motion = params.generator_params.dense_motion_params
    if motion is not None:
        multiples.append(round(1 / motion.scale_factor) * 2 ** motion.num_blocks)
    return math.lcm(*multiples)


class _DetectorGraph(nn.Module):
    """Tuple-returning wrapper: ONNX graphs return tensors, not dataclasses."""

    def __init__(self, model: FommModel) -> None:
        super().__init__()
        self.kp_detector = model.kp_detector

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        kp = self.kp_detector(image)
        return (kp.value,) if kp.jacobian is None else (kp.value, kp.jacobian)


class _EncoderGraph(nn.Module):
    def __init__(self, model: FommModel) -> None:
        super().__init__()
        self.generator = model.generator

    def forward(self, source: Tensor) -> Tensor:
        return self.generator.encode(source).features


class _GeneratorGraph(nn.Module):
    """Generation from one encoded source for a batch of driving keypoints."""

    def __init__(self, model: FommModel) -> None:
        super().__init__()
        self.generator = model.generator
        self.has_jacobian = model.kp_detector.jacobian is not None

    def forward(self, source: Tensor, features: Tensor, *keypoints: Tensor) -> Tensor:
        if self.has_jacobian:
            kp_source, kp_driving = Keypoints(keypoints[0], keypoints[1]), Keypoints(keypoints[2], keypoints[3])
        else:
            kp_source, kp_driving = Keypoints(keypoints[0]), Keypoints(keypoints[1])
        batch = kp_driving.value.shape[0]
        # Broadcast here, not through SourceFeatures.expand: its "already this batch?" test would
        # pin the dynamic batch to a number.
        kp_source = Keypoints(kp_source.value.expand(batch, -1, -1),
                              None if kp_source.jacobian is None else kp_source.jacobian.expand(batch, -1, -1, -1))
        encoded = SourceFeatures(source.expand(batch, -1, -1, -1), features.expand(batch, -1, -1, -1))
        return self.generator.animate(encoded, kp_source=kp_source, kp_driving=kp_driving).prediction


def _on_cpu(model: FommModel) -> FommModel:
    """The model in eval mode on the CPU (a copy if it lives elsewhere: the caller's stays put)."""
    return model.eval() if model.device.type == "cpu" else copy.deepcopy(model).cpu().eval()


def _scaled(unit, factor: int):
    """``factor * unit`` as a torch.export dimension (a plain Dim when ``factor`` is 1)."""
    return unit if factor == 1 else factor * unit


def _keypoint_names(has_jacobian: bool) -> list[str]:
    names = ["kp_source_value", "kp_source_jacobian", "kp_driving_value", "kp_driving_jacobian"]
    return names if has_jacobian else names[0::2]


def _export(module: nn.Module, inputs: tuple[Tensor, ...], dynamic: tuple, path: Path, input_names: list[str],
            output_names: list[str], opset: int) -> None:
    with warnings.catch_warnings():
        # The exporter warns when two inputs share a dimension name; they are meant to.
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")
        program = torch.onnx.export(module, inputs, input_names=input_names, output_names=output_names,
                                    dynamic_shapes=dynamic, opset_version=opset, dynamo=True, verbose=False)
    program.save(str(path))


def export_onnx(model: FommModel, out_dir: Path, opset: int = DEFAULT_OPSET, check: bool = True) -> ExportResult:
    """Write the three graphs of ``model`` (see the module doc) into ``out_dir``: all of them or,
    if anything fails, none."""
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    except ImportError:
        raise UserError("ONNX export needs the 'onnx' extra: pip install 'fomm[onnx]'") from None
    model = _on_cpu(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = OnnxFiles.in_folder(out_dir)
    height, width, channels = model.frame_shape
    multiple = size_multiple(model)
    num_kp = model.config.model_params.common_params.num_kp
    has_jacobian = model.kp_detector.jacobian is not None

    # Heights and widths as multiples of `multiple`; distinct dims so that H and W vary apart.
    batch = torch.export.Dim("batch", min=1)
    units = {2: torch.export.Dim("height_units", min=1), 3: torch.export.Dim("width_units", min=1)}
    size = {axis: multiple * unit for axis, unit in units.items()}
    image = torch.rand(2, channels, height, width)
    source = torch.rand(1, channels, height, width)
    with torch.no_grad():
        features = model.generator.encode(source).features
    # Distinct tensors for every input: torch.export merges inputs that are the same object.
    values = [torch.rand(count, num_kp, 2) * 2 - 1 for count in (1, 2)]
    jacobians = [torch.eye(2) + 0.1 * torch.randn(count, num_kp, 2, 2) for count in (1, 2)]
    keypoints = (values[0], jacobians[0], values[1], jacobians[1]) if has_jacobian else (values[0], values[1])
    kp_dynamic = ({}, {}, {0: batch}, {0: batch}) if has_jacobian else ({}, {0: batch})
    # The encoder's features are the image shrunk 2^n times (a divisor of `multiple`).
    shrink = height // features.shape[2]
    feature_size = {axis: _scaled(unit, multiple // shrink) for axis, unit in units.items()}

    with staged_outputs(files.all()) as staged:
        _export(_DetectorGraph(model).eval(), (image,), ({0: batch, **size},), staged[files.kp_detector],
                ["image"], ["value", "jacobian"] if has_jacobian else ["value"], opset)
        _export(_EncoderGraph(model).eval(), (source,), (size,), staged[files.source_encoder],
                ["source"], ["features"], opset)
        _export(_GeneratorGraph(model).eval(), (source, features, *keypoints), (size, feature_size, kp_dynamic),
                staged[files.generator], ["source", "features", *_keypoint_names(has_jacobian)], ["prediction"], opset)
    max_error = check_onnx(model, files) if check else None
    return ExportResult(files, max_error)


def import_onnxruntime():
    """``import onnxruntime`` with its telemetry events off: its native library otherwise looks
    up Microsoft's telemetry host from a background thread; fomm sends nothing anywhere."""
    import onnxruntime

    onnxruntime.disable_telemetry_events()
    return onnxruntime


def check_onnx(model: FommModel, files: OnnxFiles, batch: int = 3,
               sizes: Optional[Sequence[tuple[int, int]]] = None) -> float:
    """Largest absolute difference between onnxruntime and torch on random inputs, over the
    keypoints and the generated frames, at each ``(height, width)`` of ``sizes`` (default: the
    model's frame size). ``batch`` differs from the export's 2, so the dynamic batch is exercised."""
    try:
        onnxruntime = import_onnxruntime()
    except ImportError:
        raise UserError("checking the export needs onnxruntime: pip install 'fomm[onnx]' (or skip it with "
                        "--no-check)") from None

    model = _on_cpu(model)
    height, width, channels = model.frame_shape
    sessions = [onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]) for path in files.all()]
    detector, encoder, generator = sessions
    errors = []
    for size in sizes or [(height, width)]:
        source, driving = torch.rand(1, channels, *size), torch.rand(batch, channels, *size)
        with torch.no_grad():
            kp_source, kp_driving = model.kp_detector(source), model.kp_detector(driving)
            expected = model.generator(source.expand(batch, -1, -1, -1), kp_source=kp_source.expand(batch),
                                       kp_driving=kp_driving).prediction
        onnx_source = detector.run(None, {"image": source.numpy()})
        onnx_driving = detector.run(None, {"image": driving.numpy()})
        features = encoder.run(None, {"source": source.numpy()})[0]
        names = [item.name for item in generator.get_inputs()]
        feeds = dict(zip(names, [source.numpy(), features, *onnx_source, *onnx_driving]))
        prediction = torch.from_numpy(generator.run(None, feeds)[0])
        errors += [(torch.from_numpy(onnx_driving[0]) - kp_driving.value).abs().max().item(),
                   (prediction - expected).abs().max().item()]
    return float(max(errors))
