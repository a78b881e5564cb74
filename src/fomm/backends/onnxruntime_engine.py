"""The onnxruntime backend: the exported graphs on onnxruntime's CPU execution provider (fp32)."""

from __future__ import annotations

import importlib.util
from typing import Optional, Sequence

import numpy as np

from ..errors import UserError
from ..export import OnnxFiles, import_onnxruntime
from ..models import MotionModel
from .exported import GRAPHS, ExportedEngine, default_threads

__all__ = ["OnnxRuntimeEngine", "onnxruntime_available"]


def onnxruntime_available() -> bool:
    """Whether onnxruntime is installed (found, not imported)."""
    return importlib.util.find_spec("onnxruntime") is not None


class OnnxRuntimeEngine(ExportedEngine):
    """Runs ``files`` with onnxruntime on ``threads`` CPU threads (default: torch's count).

    Only fp32: onnxruntime's CPU kernels have no fast bf16 convolutions, and its fp16 ones are
    slower than fp32 on CPUs.
    """

    backend = "onnxruntime"

    @staticmethod
    def check_precision(precision: str) -> None:
        """Raise UserError for a precision this backend does not run (before any export)."""
        if precision != "fp32":
            raise UserError(f"the onnxruntime backend runs fp32 only, not {precision} "
                            f"(use --backend openvino or torch for reduced precision)")

    def __init__(self, model: MotionModel, files: OnnxFiles, precision: str = "fp32", threads: Optional[int] = None) -> None:
        self.check_precision(precision)
        if not onnxruntime_available():
            raise UserError("the onnxruntime backend needs onnxruntime: pip install 'fomm[onnx]'")
        onnxruntime = import_onnxruntime()
        super().__init__(model, files, precision)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = default_threads(threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sessions = {graph: onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                         for graph, path in zip(GRAPHS, files.graphs())}
        self.input_names = {graph: [item.name for item in session.get_inputs()]
                            for graph, session in self.sessions.items()}

    def run(self, graph: str, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.sessions[graph].run(None, dict(zip(self.input_names[graph], inputs)))
