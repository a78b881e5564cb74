"""The OpenVINO backend: the exported graphs compiled by OpenVINO for the CPU.

OpenVINO picks its own kernels; with ``INFERENCE_PRECISION_HINT=bf16`` it runs the convolutions
in bf16 on AMX / AVX512-BF16 CPUs (on CPUs without them it computes in fp32 whatever the hint).
Each graph is compiled once, with its dynamic batch and size (as fast as fixed shapes here:
vox-256, 1 thread, bf16 10.2 vs 10.5 frames/s, fp32 1.75 vs 1.69), and the compiled blobs are
cached under ``$FOMM_CACHE/openvino`` so that later runs start faster. Within a process, engines
for the same files and settings share the compiled graphs (each has its own infer requests), so a
second engine starts in milliseconds. ``int8`` runs graphs quantised by
:mod:`fomm.backends.quantization` (their float parts in fp32).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import UserError
from ..export import OnnxFiles
from ..models import MotionModel
from .exported import GRAPHS, ExportedEngine, default_threads

logger = logging.getLogger(__name__)

__all__ = ["OpenVinoEngine", "forget_compiled", "openvino_available"]

#: OpenVINO's inference precision per fomm precision. int8 graphs carry their own int8 layers;
#: what they keep float must run in fp32, not in the bf16 OpenVINO picks on AMX by default.
_PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}


def openvino_available() -> bool:
    """Whether OpenVINO is installed (found, not imported: importing it has side effects)."""
    return importlib.util.find_spec("openvino") is not None


def import_openvino():
    """``import openvino`` with its usage telemetry off. Importing it otherwise sends an event to
    Google Analytics from a forked process (its model-conversion tools report usage unless opted
    out); fomm sends nothing anywhere. ``CI=true`` is openvino_telemetry's own opt-out, read
    once while the module loads, so it is set for the import only."""
    previous = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        import openvino
    finally:
        if previous is None:
            del os.environ["CI"]
        else:
            os.environ["CI"] = previous
    return openvino


# Compiled graphs of this process, by file (path, size, modification time) and settings.
_compiled: dict[tuple, Any] = {}


def _compiled_model(core, path: Path, config: dict[str, Any], blob_cache: Optional[Path]):
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, tuple(sorted(config.items())), str(blob_cache))
    if key not in _compiled:
        _compiled[key] = core.compile_model(str(path), "CPU", config)
    return _compiled[key]


def forget_compiled() -> None:
    """Drop the compiled graphs this process keeps (they hold the weights in memory)."""
    _compiled.clear()


class OpenVinoEngine(ExportedEngine):
    """Runs ``files`` with OpenVINO on the CPU at ``precision`` (fp32, bf16 or fp16, OpenVINO's
    inference precision hint; int8 for quantised graphs), on ``threads`` threads (default:
    torch's count)."""

    backend = "openvino"

    def __init__(self, model: MotionModel, files: OnnxFiles, precision: str = "fp32", threads: Optional[int] = None,
                 blob_cache: Optional[Path] = None) -> None:
        if precision not in _PRECISION_HINTS:
            raise UserError(f"the openvino backend runs fp32, bf16, fp16 or int8, not {precision!r}")
        if not openvino_available():
            raise UserError("the openvino backend needs OpenVINO: pip install 'fomm[openvino]'")
        openvino = import_openvino()

        super().__init__(model, files, precision)
        self.core = openvino.Core()
        if blob_cache is not None:
            self.core.set_property({"CACHE_DIR": str(blob_cache)})
        self.config = {"INFERENCE_PRECISION_HINT": _PRECISION_HINTS[precision],
                       "INFERENCE_NUM_THREADS": default_threads(threads),
                       "PERFORMANCE_HINT": "LATENCY"}
        self.requests = {graph: _compiled_model(self.core, Path(path), self.config, blob_cache).create_infer_request()
                         for graph, path in zip(GRAPHS, files.graphs())}

    def run(self, graph: str, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        request = self.requests[graph]
        results = request.infer(list(inputs))
        # The request reuses its output buffers on the next call: copy what is returned.
        return [np.array(results[output], copy=True) for output in request.model_outputs]
