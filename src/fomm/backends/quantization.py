"""int8 post-training quantisation of exported graphs with NNCF, for OpenVINO on the CPU.

NNCF reads a graph (ONNX), runs it in fp32 on calibration inputs to learn each activation's
range, and inserts int8 quantise/dequantise pairs around the convolutions and matrix products,
which OpenVINO then runs as int8 kernels (VNNI, AMX-INT8: several times fp32's rate). What must
stay float stays float (:func:`float_layers`): the operations that compute statistics and
sampling coordinates (softmax, the keypoint means and jacobians, 2x2 inverses, sampling grids),
and the last layers that feed them or a graph output. The rest of the graph runs in fp32 (the
int8 model is compiled with an fp32 inference precision, never bf16).

Quantised graphs are cached beside the exported ones, in ``int8-<key>/`` where the key hashes the
graphs, the calibration inputs' source (a digest the caller gives) and the versions of NNCF and
OpenVINO; the :data:`KEEP_QUANTISATIONS` newest are kept. A ``manifest.json`` written last holds the SHA-256 of every file: a folder whose files
do not match it (a crash half-way, a disk error, an edit) is rebuilt, never used.

Works on any list of graph files: the engine glue below (:func:`int8_graphs`) records each graph's
inputs by running the fp32 graphs through the engine's own methods on calibration frames.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError
from ..export import OnnxFiles
from ..files import MANIFEST, file_digest, manifest_problem, write_manifest
from ..models import MotionModel, MotionSettings
from .exported import GRAPHS
from .openvino_engine import OpenVinoEngine, import_openvino, openvino_available

logger = logging.getLogger(__name__)

__all__ = ["MANIFEST", "QUANTIZATION_FORMAT", "cached_int8_graphs", "find_int8_graphs", "float_layers",
           "frames_digest", "int8_graphs", "nncf_available", "quantize_graph"]

#: Version of what this module writes (the choice of float layers, the NNCF settings); part of
#: the cache key.
QUANTIZATION_FORMAT = 1
#: Quantisations kept beside one export (one per calibration clip; vox-256's take ~60 MB each):
#: writing a new one removes the oldest beyond this.
KEEP_QUANTISATIONS = 3
#: Operations whose inputs are never quantised: statistics, normalisations and sampling, where
#: int8's 256 levels would move keypoints and grids (last round found bf16 already too coarse for
#: them).
FLOAT_OPERATION_TYPES = ("Softmax", "Sigmoid", "GridSample", "Inverse", "Einsum", "ReduceSum", "ReduceMean",
                         "Divide", "Exp", "Power", "Multiply")
#: The layers that produce what these consume stay float too (:func:`float_layers`): heatmaps,
#: masks, occlusion, sampling grids, and every graph output.
HEAD_CONSUMER_TYPES = ("Softmax", "Sigmoid", "GridSample", "Inverse", "Result")
#: Layers NNCF quantises (their weights and input activations).
_QUANTISED_LAYER_TYPES = ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData")


def nncf_available() -> bool:
    """Whether NNCF and OpenVINO are installed (found, not imported)."""
    return openvino_available() and importlib.util.find_spec("nncf") is not None


def _import_nncf():
    if not nncf_available():
        raise UserError("int8 needs NNCF and OpenVINO: pip install 'fomm[int8]'")
    import_openvino()  # telemetry off before NNCF imports OpenVINO itself
    import nncf

    return nncf


def float_layers(model) -> list[str]:
    """Friendly names of the layers of an OpenVINO ``model`` that stay float: every convolution or
    matrix product from which an operation of :data:`HEAD_CONSUMER_TYPES` (graph outputs
    included) is reached without passing another such layer. These are the output
    heads: keypoint heatmaps and jacobians, motion masks and occlusion, the final image layer."""
    names: set[str] = set()
    visited: set[int] = set()
    for op in model.get_ops():
        if op.get_type_name() not in HEAD_CONSUMER_TYPES:
            continue
        stack = [op]
        while stack:
            node = stack.pop()
            for port in node.inputs():
                producer = port.get_source_output().get_node()
                if id(producer) in visited:
                    continue
                visited.add(id(producer))
                if producer.get_type_name() in _QUANTISED_LAYER_TYPES:
                    names.add(producer.get_friendly_name())
                else:
                    stack.append(producer)
    return sorted(names)


def quantize_graph(graph: Path, calibration: Sequence[Sequence[np.ndarray]], out: Path) -> Path:
    """Quantise the graph file ``graph`` (ONNX or OpenVINO IR) to int8 with NNCF, calibrated on
    ``calibration`` (input tuples in the graph's input order, one per calibration sample), and
    write it as OpenVINO IR to ``out`` (``.xml``, with its ``.bin`` beside it). Float weights stay
    fp32 in the file (no fp16 compression)."""
    if not calibration:
        raise ValueError(f"no calibration inputs for {graph.name}")
    nncf = _import_nncf()
    openvino = import_openvino()
    model = openvino.Core().read_model(str(graph))
    ignored = nncf.IgnoredScope(names=float_layers(model), types=list(FLOAT_OPERATION_TYPES), validate=False)
    quantized = nncf.quantize(model, nncf.Dataset([list(inputs) for inputs in calibration]),
                              preset=nncf.QuantizationPreset.MIXED, subset_size=len(calibration),
                              ignored_scope=ignored)
    out.parent.mkdir(parents=True, exist_ok=True)
    openvino.save_model(quantized, str(out), compress_to_fp16=False)
    return out


# Files whose SHA-256 was checked in this process: (path, size, mtime_ns) -> digest.
_file_digests: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, remembered per (path, size, modification time) in this process."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    known = _file_digests.get(key)
    if known is None:
        known = _file_digests[key] = file_digest(path)
    return known


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _cache_key(graphs: Sequence[Path], calibration_digest: str) -> str:
    digest = hashlib.blake2b(digest_size=12)
    for part in (f"format {QUANTIZATION_FORMAT}", f"nncf {_version('nncf')}", f"openvino {_version('openvino')}",
                 calibration_digest, *(_file_digest(graph) for graph in graphs)):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def _outputs(folder: Path, graphs: Sequence[Path]) -> list[Path]:
    return [folder / f"{graph.stem}.xml" for graph in graphs]


def _valid(folder: Path, graphs: Sequence[Path]) -> bool:
    """Whether ``folder`` holds a complete quantisation of ``graphs`` whose files match its manifest."""
    outputs = _outputs(folder, graphs)
    return manifest_problem(folder, [*outputs, *(path.with_suffix(".bin") for path in outputs)]) is None


def cached_int8_graphs(graphs: Sequence[Path], calibration_digest: str,
                       calibration: Callable[[], Mapping[Path, Sequence[Sequence[np.ndarray]]]]) -> list[Path]:
    """The int8 IR files (``.xml``) of ``graphs``, from the cache beside them or quantised now.

    ``calibration_digest`` names the calibration inputs (e.g. :func:`frames_digest` of the frames
    they come from); ``calibration()`` produces them, per graph file, only when the cache has no
    valid quantisation for that digest. A corrupt cached folder is logged and rebuilt.
    """
    folder = graphs[0].parent / f"int8-{_cache_key(graphs, calibration_digest)}"
    if _valid(folder, graphs):
        return _outputs(folder, graphs)
    if folder.exists():
        logger.warning("int8 cache %s does not match its manifest; quantising again", folder)
    inputs = calibration()
    staging = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        outputs = [quantize_graph(graph, inputs[graph], staging / f"{graph.stem}.xml") for graph in graphs]
        # The manifest last: a folder without one (a crash before this line) is never trusted.
        write_manifest(staging, [*outputs, *(path.with_suffix(".bin") for path in outputs)],
                       format=QUANTIZATION_FORMAT, calibration=calibration_digest)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _prune(folder.parent, keep=folder)
    return _outputs(folder, graphs)


def quantisation_folders(parent: Path) -> list[Path]:
    """The finished int8 quantisations in ``parent`` (an export's folder), newest first."""
    return sorted((path for path in parent.glob("int8-*") if path.is_dir() and ".tmp-" not in path.name),
                  key=lambda path: path.stat().st_mtime, reverse=True)


def _prune(parent: Path, keep: Path) -> None:
    """Remove all but the :data:`KEEP_QUANTISATIONS` newest int8 folders of ``parent`` (``keep``,
    just written, is among them)."""
    for old in [path for path in quantisation_folders(parent) if path != keep][KEEP_QUANTISATIONS - 1:]:
        shutil.rmtree(old, ignore_errors=True)


def find_int8_graphs(graphs: Sequence[Path]) -> Optional[list[Path]]:
    """A valid cached int8 quantisation of ``graphs`` (the newest), whatever it was calibrated on,
    or None. ``auto`` uses it only after checking its frames against fp32 on the user's own."""
    return next((_outputs(folder, graphs) for folder in quantisation_folders(graphs[0].parent)
                 if _valid(folder, graphs)), None)


def frames_digest(tensors: Iterable[Tensor]) -> str:
    """A hash of calibration frames (their shapes and fp32 values)."""
    digest = hashlib.blake2b(digest_size=16)
    for tensor in tensors:
        array = np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy())
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class _RecordingEngine(OpenVinoEngine):
    """The fp32 graphs on OpenVINO, keeping a copy of every input tuple each graph is run on."""

    def __init__(self, model: MotionModel, files: OnnxFiles, threads: Optional[int],
                 blob_cache: Optional[Path]) -> None:
        super().__init__(model, files, "fp32", threads=threads, blob_cache=blob_cache)
        self.recorded: dict[str, list[tuple[np.ndarray, ...]]] = defaultdict(list)

    def run(self, graph: str, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        self.recorded[graph].append(tuple(np.array(array, copy=True) for array in inputs))
        return super().run(graph, inputs)


def _record_inputs(model: MotionModel, files: OnnxFiles, source: Tensor, driving: Tensor, threads: Optional[int],
                   blob_cache: Optional[Path]) -> dict[Path, list[tuple[np.ndarray, ...]]]:
    """Each graph's inputs when animating ``source`` (1, C, H, W) with ``driving`` (T, C, H, W)
    frame by frame (so each frame is one calibration sample): the source is encoded, each driving
    frame described and rendered with its own motion."""
    engine = _RecordingEngine(model, files, threads, blob_cache)
    absolute = MotionSettings("absolute")
    with torch.inference_mode():
        prepared = engine.prepare_source(source)
        for frame in driving.split(1):
            motion = engine.describe(frame)
            engine.render(prepared, model.transfer(prepared.motion, motion, motion, absolute))
    return {path: engine.recorded[graph] for graph, path in zip(GRAPHS, files.graphs())}


def int8_graphs(model: MotionModel, files: OnnxFiles, source: Tensor, driving: Tensor, threads: Optional[int] = None,
                blob_cache: Optional[Path] = None) -> OnnxFiles:
    """The exported ``files`` of ``model`` quantised to int8 (cached), calibrated on ``source``
    (1, C, H, W) and ``driving`` frames (T, C, H, W) in [0, 1]: the user's own, or the bundled
    samples. The graphs' layouts file stays the export's."""
    graphs = list(files.graphs())
    digest = frames_digest([source, driving])
    outputs = cached_int8_graphs(graphs, digest,
                                 lambda: _record_inputs(model, files, source, driving, threads, blob_cache))
    return OnnxFiles(*outputs, files.layouts)
