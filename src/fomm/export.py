"""ONNX export of the two networks used at inference: keypoint detector and generator.

``kp_detector.onnx``: ``image (B, 3, H, W)`` → ``value (B, K, 2)`` [, ``jacobian (B, K, 2, 2)``].
``generator.onnx``: ``source``, ``kp_source_value``, [``kp_source_jacobian``,] ``kp_driving_value``
[, ``kp_driving_jacobian``] → ``prediction (B, 3, H, W)``. The batch dimension is dynamic; relative
motion (``fomm.relative_keypoints``) is a few tensor operations that callers do between the two.

Uses torch's dynamo-based exporter (needs ``onnxscript``); the TorchScript exporter mistranslates
the strided anti-alias downsampling. Sampling keeps ``align_corners=True`` (ONNX GridSample).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from .errors import UserError
from .keypoints import Keypoints
from .models import FommModel

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 18


class _DetectorGraph(nn.Module):
    """Tuple-returning wrapper: ONNX graphs return tensors, not dataclasses."""

    def __init__(self, model: FommModel) -> None:
        super().__init__()
        self.kp_detector = model.kp_detector

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        kp = self.kp_detector(image)
        return (kp.value,) if kp.jacobian is None else (kp.value, kp.jacobian)


class _GeneratorGraph(nn.Module):
    def __init__(self, model: FommModel) -> None:
        super().__init__()
        self.generator = model.generator
        self.has_jacobian = model.kp_detector.jacobian is not None

    def forward(self, source: Tensor, *keypoints: Tensor) -> Tensor:
        if self.has_jacobian:
            kp_source = Keypoints(keypoints[0], keypoints[1])
            kp_driving = Keypoints(keypoints[2], keypoints[3])
        else:
            kp_source, kp_driving = Keypoints(keypoints[0]), Keypoints(keypoints[1])
        return self.generator(source, kp_source=kp_source, kp_driving=kp_driving).prediction


@dataclass
class ExportResult:
    kp_detector: Path
    generator: Path
    max_error: Optional[float]  # onnxruntime vs torch on random inputs; None if not checked


def _atomic_export(module: nn.Module, inputs: tuple[Tensor, ...], path: Path, input_names: list[str],
                   output_names: list[str], opset: int) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    batch = {0: torch.export.Dim("batch", min=1)}
    # Dynamic shapes follow forward's signature: the first input, then the *keypoints tuple.
    dynamic = (batch,) if len(inputs) == 1 else (batch, tuple(batch for _ in inputs[1:]))
    try:
        program = torch.onnx.export(module, inputs, input_names=input_names, output_names=output_names,
                                    dynamic_shapes=dynamic, opset_version=opset, dynamo=True, verbose=False)
        program.save(str(temporary))
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def export_onnx(model: FommModel, out_dir: Path, opset: int = DEFAULT_OPSET, check: bool = True) -> ExportResult:
    """Write ``kp_detector.onnx`` and ``generator.onnx`` for ``model`` into ``out_dir``."""
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    except ImportError:
        raise UserError("ONNX export needs the 'onnx' extra: pip install 'fomm[onnx]'") from None
    model = model.eval().cpu()
    out_dir.mkdir(parents=True, exist_ok=True)
    height, width, channels = model.frame_shape
    num_kp = model.config.model_params.common_params.num_kp
    has_jacobian = model.kp_detector.jacobian is not None
    image = torch.rand(2, channels, height, width)
    detector_outputs = ["value", "jacobian"] if has_jacobian else ["value"]
    detector_path = out_dir / "kp_detector.onnx"
    _atomic_export(_DetectorGraph(model).eval(), (image,), detector_path, ["image"], detector_outputs, opset)

    # Distinct tensors for every input: torch.export merges inputs that are the same object.
    values = [torch.rand(2, num_kp, 2) * 2 - 1 for _ in range(2)]
    jacobians = [torch.eye(2) + 0.1 * torch.randn(2, num_kp, 2, 2) for _ in range(2)]
    if has_jacobian:
        kp_inputs = (values[0], jacobians[0], values[1], jacobians[1])
        kp_names = ["kp_source_value", "kp_source_jacobian", "kp_driving_value", "kp_driving_jacobian"]
    else:
        kp_inputs, kp_names = (values[0], values[1]), ["kp_source_value", "kp_driving_value"]
    generator_path = out_dir / "generator.onnx"
    _atomic_export(_GeneratorGraph(model).eval(), (image, *kp_inputs), generator_path, ["source", *kp_names],
                   ["prediction"], opset)
    max_error = check_onnx(model, detector_path, generator_path) if check else None
    return ExportResult(detector_path, generator_path, max_error)


def check_onnx(model: FommModel, detector_path: Path, generator_path: Path, batch: int = 3) -> float:
    """Largest absolute difference between onnxruntime and torch on random inputs (batch 3, which
    differs from the export batch, so the dynamic batch axis is exercised too)."""
    import onnxruntime

    height, width, channels = model.frame_shape
    source, driving = torch.rand(batch, channels, height, width), torch.rand(batch, channels, height, width)
    with torch.no_grad():
        kp_source, kp_driving = model.kp_detector(source), model.kp_detector(driving)
        expected = model.generator(source, kp_source=kp_source, kp_driving=kp_driving).prediction
    detector = onnxruntime.InferenceSession(str(detector_path), providers=["CPUExecutionProvider"])
    generator = onnxruntime.InferenceSession(str(generator_path), providers=["CPUExecutionProvider"])
    onnx_source = detector.run(None, {"image": source.numpy()})
    onnx_driving = detector.run(None, {"image": driving.numpy()})
    names = [i.name for i in generator.get_inputs()]
    feeds = dict(zip(names, [source.numpy(), *onnx_source, *onnx_driving]))
    prediction = torch.from_numpy(generator.run(None, feeds)[0])
    errors = [(torch.from_numpy(onnx_source[0]) - kp_source.value).abs().max(), (prediction - expected).abs().max()]
    return float(max(errors))
