"""ONNX export of the networks used at inference, for every model family, with a dynamic batch
and image size.

Three graphs (``B`` driving frames, one source; ``H`` and ``W`` any multiple of the model's
:meth:`~fomm.models.MotionModel.size_multiple`) and a small JSON file that says how their flat
inputs and outputs group into the family's descriptions:

``describe.onnx``
    ``image (B, C, H, W)`` in [0, 1] -> the motion description's tensors (FOMM: keypoint values
    ``(B, K, 2)`` and jacobians; TPSMM: control points; MRAA: region parameters).
``encode_source.onnx``
    ``source (1, C, H, W)`` -> the source state's tensors (the image, encoder features): once per
    source.
``render.onnx``
    the source state's tensors, the source's description (batch 1) and the description to render
    (batch ``B``, as :meth:`~fomm.models.MotionModel.transfer` makes it: a TPS model's fitted
    splines included) -> ``prediction (B, C, H, W)``.
``graphs.json``
    the family, and the layouts (:meth:`fomm.bundle.TensorBundle.layout`) of the description, of
    the description to render and of the state.

Coordinates are (x, y) in [-1, 1]. The motion transfer (relative, absolute, AVD) is done by the
caller between ``describe`` and ``render`` (:meth:`fomm.models.MotionModel.transfer`). Uses torch's
dynamo-based exporter (needs ``onnxscript``); the TorchScript exporter mistranslates the strided
anti-alias downsampling.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from .bundle import TensorBundle
from .errors import UserError
from .files import staged_outputs
from .models import MotionModel, MotionSettings

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_OPSET", "EXPORT_FORMAT", "ExportResult", "GraphLayouts", "OnnxFiles", "check_onnx",
           "export_onnx"]

DEFAULT_OPSET = 18
#: Version of the graphs' inputs and outputs; part of the key of cached exports.
EXPORT_FORMAT = 3
GRAPHS = ("describe", "encode_source", "render")

Layout = tuple[tuple[str, Optional[int]], ...]


@dataclass(frozen=True)
class OnnxFiles:
    """The graph files of one export and their layouts file."""

    describe: Path
    encode_source: Path
    render: Path
    layouts: Path

    @classmethod
    def in_folder(cls, folder: Path) -> "OnnxFiles":
        return cls(*(folder / f"{graph}.onnx" for graph in GRAPHS), folder / "graphs.json")

    def graphs(self) -> tuple[Path, Path, Path]:
        return (self.describe, self.encode_source, self.render)

    def all(self) -> tuple[Path, ...]:
        return (*self.graphs(), self.layouts)

    def exist(self) -> bool:
        return all(path.is_file() for path in self.all())


@dataclass(frozen=True)
class GraphLayouts:
    """How the graphs' flat tensors group: the description's, the rendered description's and the
    state's fields."""

    family: str
    motion: Layout
    rendered: Layout
    state: Layout

    def to_json(self) -> str:
        return json.dumps({"family": self.family, "format": EXPORT_FORMAT, "motion": self.motion,
                           "rendered": self.rendered, "state": self.state}, indent=1)

    @classmethod
    def read(cls, path: Path) -> "GraphLayouts":
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != EXPORT_FORMAT:
            raise ValueError(f"{path}: export format {data.get('format')}, expected {EXPORT_FORMAT}")
        as_layout = lambda pairs: tuple((str(name), None if count is None else int(count)) for name, count in pairs)
        return cls(str(data["family"]), as_layout(data["motion"]), as_layout(data["rendered"]),
                   as_layout(data["state"]))


@dataclass
class ExportResult:
    files: OnnxFiles
    max_error: Optional[float]  # onnxruntime vs torch on random inputs; None if not checked


def _broadcast(bundle: TensorBundle, batch: Any) -> TensorBundle:
    """``bundle`` (batch 1) expanded to ``batch``, which may be a symbolic size: no "is it already
    that batch?" test, which would pin the dynamic batch to a number."""
    return bundle._map(lambda tensor: tensor.expand(batch, *tensor.shape[1:]))


class _DescribeGraph(nn.Module):
    """Tuple-returning wrapper: ONNX graphs return tensors, not dataclasses."""

    def __init__(self, model: MotionModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        return self.model.describe_for_export(image)


class _EncodeGraph(nn.Module):
    def __init__(self, model: MotionModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, source: Tensor) -> tuple[Tensor, ...]:
        return self.model.encode_source(source).tensors()


class _RenderGraph(nn.Module):
    """Rendering from one encoded source for a batch of driving descriptions."""

    def __init__(self, model: MotionModel, layouts: GraphLayouts) -> None:
        super().__init__()
        self.model = model
        self.layouts = layouts
        self.state_count = _count(layouts.state)
        self.motion_count = _count(layouts.motion)

    def forward(self, *tensors: Tensor) -> Tensor:
        state_tensors = tensors[:self.state_count]
        source_tensors = tensors[self.state_count:self.state_count + self.motion_count]
        driving_tensors = tensors[self.state_count + self.motion_count:]
        model = self.model
        driving = model.motion_type.from_tensors(driving_tensors, self.layouts.rendered)
        batch = driving_tensors[0].shape[0]
        state = _broadcast(model.state_type.from_tensors(state_tensors, self.layouts.state), batch)
        source = _broadcast(model.motion_type.from_tensors(source_tensors, self.layouts.motion), batch)
        return model.render(state, source, driving).prediction


def _count(layout: Layout) -> int:
    return sum(1 if count is None else count for _, count in layout)


def _names(prefix: str, layout: Layout) -> list[str]:
    names = []
    for field, count in layout:
        names += [f"{prefix}{field}"] if count is None else [f"{prefix}{field}_{i}" for i in range(count)]
    return names


def _on_cpu(model: MotionModel) -> MotionModel:
    """The model in eval mode on the CPU (a copy if it lives elsewhere: the caller's stays put)."""
    return model.eval() if model.device.type == "cpu" else copy.deepcopy(model).cpu().eval()


def _scaled(unit, factor: int):
    """``factor * unit`` as a torch.export dimension (a plain Dim when ``factor`` is 1)."""
    return unit if factor == 1 else factor * unit


def _export(module: nn.Module, inputs: tuple[Tensor, ...], dynamic: tuple, path: Path, input_names: list[str],
            output_names: Optional[list[str]], opset: int) -> None:
    with warnings.catch_warnings():
        # The exporter warns when two inputs share a dimension name; they are meant to.
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")
        program = torch.onnx.export(module, inputs, input_names=input_names, output_names=output_names,
                                    dynamic_shapes=dynamic, opset_version=opset, dynamo=True, verbose=False)
    program.save(str(path))


def _spatial_dims(tensor: Tensor, image_height: int, units: dict, multiple: int) -> dict:
    """Dynamic height/width of a map that is the image shrunk by a power of two (a divisor of
    ``multiple``); other tensors keep their shape."""
    if tensor.dim() != 4:
        return {}
    shrink = image_height // tensor.shape[2]
    return {axis: _scaled(unit, multiple // shrink) for axis, unit in units.items()}


def export_onnx(model: MotionModel, out_dir: Path, opset: int = DEFAULT_OPSET, check: bool = True) -> ExportResult:
    """Write the graphs of ``model`` and their layouts (see the module doc) into ``out_dir``: all of
    them or, if anything fails, none."""
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    except ImportError:
        raise UserError("ONNX export needs the 'onnx' extra: pip install 'fomm[onnx]'") from None
    model = _on_cpu(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = OnnxFiles.in_folder(out_dir)
    height, width, channels = model.frame_shape
    multiple = model.size_multiple()

    # Heights and widths as multiples of `multiple`; distinct dims so that H and W vary apart.
    batch = torch.export.Dim("batch", min=1)
    units = {2: torch.export.Dim("height_units", min=1), 3: torch.export.Dim("width_units", min=1)}
    size = {axis: multiple * unit for axis, unit in units.items()}
    image = torch.rand(2, channels, height, width)
    source = torch.rand(1, channels, height, width)
    with torch.no_grad():
        state = model.encode_source(source)
        source_motion = model.describe(source)
        # Distinct tensors for every input: torch.export merges inputs that are the same object.
        driving_motion = model.describe(torch.rand(2, channels, height, width))
        rendered_motion = model.transfer(source_motion, driving_motion, driving_motion[:1], MotionSettings("absolute"))
    layouts = GraphLayouts(model.family, source_motion.layout(), rendered_motion.layout(), state.layout())
    state_tensors = tuple(tensor.clone() for tensor in state.tensors())
    motion_inputs = (*source_motion.tensors(), *(tensor.clone() for tensor in rendered_motion.tensors()))
    dynamic = (*(_spatial_dims(tensor, height, units, multiple) for tensor in state_tensors),
               *({} for _ in source_motion.tensors()), *({0: batch} for _ in rendered_motion.tensors()))
    render_names = [*_names("state_", layouts.state), *_names("source_", layouts.motion),
                    *_names("driving_", layouts.rendered)]

    with staged_outputs(files.all()) as staged:
        _export(_DescribeGraph(model).eval(), (image,), ({0: batch, **size},), staged[files.describe],
                ["image"], None, opset)
        _export(_EncodeGraph(model).eval(), (source,), (size,), staged[files.encode_source], ["source"],
                _names("", layouts.state), opset)
        # One variadic argument: its dynamic shapes are one tuple.
        _export(_RenderGraph(model, layouts).eval(), (*state_tensors, *motion_inputs), (dynamic,),
                staged[files.render], render_names, ["prediction"], opset)
        staged[files.layouts].write_text(layouts.to_json(), encoding="utf-8")
    max_error = check_onnx(model, files) if check else None
    return ExportResult(files, max_error)


def import_onnxruntime():
    """``import onnxruntime`` with its telemetry events off: its native library otherwise looks
    up Microsoft's telemetry host from a background thread; fomm sends nothing anywhere."""
    import onnxruntime

    onnxruntime.disable_telemetry_events()
    return onnxruntime


def check_onnx(model: MotionModel, files: OnnxFiles, batch: int = 3,
               sizes: Optional[Sequence[tuple[int, int]]] = None) -> float:
    """Largest absolute difference between onnxruntime and torch on random inputs (seeded), over the
    descriptions and the rendered frames, at each ``(height, width)`` of ``sizes`` (default: the
    model's frame size). ``batch`` differs from the export's 2, so the dynamic batch is exercised."""
    try:
        onnxruntime = import_onnxruntime()
    except ImportError:
        raise UserError("checking the export needs onnxruntime: pip install 'fomm[onnx]' (or skip it with "
                        "--no-check)") from None

    model = _on_cpu(model)
    height, width, channels = model.frame_shape
    layouts = GraphLayouts.read(files.layouts)
    describe, encode, render = (onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                                for path in files.graphs())
    errors = []
    # Seeded: the same inputs on every call, so a check's verdict does not depend on what ran before.
    generator = torch.Generator().manual_seed(0)
    for size in sizes or [(height, width)]:
        source = torch.rand(1, channels, *size, generator=generator)
        driving = torch.rand(batch, channels, *size, generator=generator)
        with torch.no_grad():
            source_motion, driving_motion = model.describe(source), model.describe(driving)
            rendered = model.transfer(source_motion, driving_motion, driving_motion[:1], MotionSettings("absolute"))
            expected = model.render(model.encode_source(source), source_motion, rendered).prediction
        onnx_source = describe.run(None, {"image": source.numpy()})
        onnx_driving = describe.run(None, {"image": driving.numpy()})
        state = encode.run(None, {"source": source.numpy()})
        names = [item.name for item in render.get_inputs()]
        as_model = lambda arrays: model.description_from_export([torch.from_numpy(a) for a in arrays], layouts.motion)
        feeds = [*state, *(tensor.numpy() for tensor in as_model(onnx_source).tensors()),
                 *(tensor.numpy() for tensor in rendered.tensors())]
        prediction = torch.from_numpy(render.run(None, dict(zip(names, feeds)))[0])
        described = as_model(onnx_driving)
        errors += [max((a - b).abs().max().item() for a, b in zip(described.tensors(), driving_motion.tensors())),
                   (prediction - expected).abs().max().item()]
    return float(max(errors))
