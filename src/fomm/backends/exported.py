"""What the runtimes that run the exported ONNX graphs (:mod:`fomm.export`) share: converting
tensors to arrays and back, and grouping the graphs' flat inputs and outputs into the family's
descriptions."""

from __future__ import annotations

from abc import abstractmethod
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ..bundle import TensorBundle
from ..export import GRAPHS, GraphLayouts, OnnxFiles
from ..models import MotionModel, Rendered
from .base import Engine, PreparedSource

__all__ = ["GRAPHS", "ExportedEngine", "default_threads"]


def default_threads(threads: Optional[int]) -> int:
    """``threads``, or as many as torch uses (``--threads`` sets both)."""
    return threads if threads is not None else torch.get_num_threads()


def _array(tensor: Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy())


class ExportedEngine(Engine):
    """An engine over the three exported graphs of ``model``, on the CPU. Subclasses load the
    graphs and implement :meth:`run`."""

    def __init__(self, model: MotionModel, files: OnnxFiles, precision: str) -> None:
        super().__init__(precision, torch.device("cpu"))
        self.model = model
        self.files = files
        self.layouts = GraphLayouts.read(files.layouts)

    @abstractmethod
    def run(self, graph: str, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run ``graph`` (one of :data:`GRAPHS`) on ``inputs`` in the graph's input order; the
        outputs in the graph's order, as arrays the caller may keep."""

    def describe(self, images: Tensor) -> TensorBundle:
        outputs = self.run("describe", [_array(images)])
        return self.model.description_from_export([torch.from_numpy(array) for array in outputs], self.layouts.motion)

    def prepare_source(self, image: Tensor) -> PreparedSource:
        image = image.detach().to("cpu", torch.float32)
        return PreparedSource(image=image, motion=self.describe(image),
                              state=self.run("encode_source", [_array(image)]))

    def render(self, source: PreparedSource, driving: TensorBundle) -> Rendered:
        # The graph takes the one source's description (batch 1) and broadcasts it itself.
        inputs = [*source.state, *map(_array, source.motion[:1].tensors()), *map(_array, driving.tensors())]
        return Rendered(prediction=torch.from_numpy(self.run("render", inputs)[0]))
