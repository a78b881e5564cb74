"""What the runtimes that run the exported ONNX graphs (:mod:`fomm.export`) share: converting
tensors to arrays and back, and the order of the graphs' inputs."""

from __future__ import annotations

from abc import abstractmethod
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ..export import OnnxFiles
from ..keypoints import Keypoints
from ..models import GeneratorOutput
from .base import Engine, PreparedSource

__all__ = ["ExportedEngine", "default_threads"]

GRAPHS = ("kp_detector", "source_encoder", "generator")


def default_threads(threads: Optional[int]) -> int:
    """``threads``, or as many as torch uses (``--threads`` sets both)."""
    return threads if threads is not None else torch.get_num_threads()


def _array(tensor: Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy())


def _keypoint_arrays(keypoints: Keypoints) -> list[np.ndarray]:
    arrays = [_array(keypoints.value)]
    if keypoints.jacobian is not None:
        arrays.append(_array(keypoints.jacobian))
    return arrays


class ExportedEngine(Engine):
    """An engine over the three exported graphs, on the CPU. Subclasses load the graphs and
    implement :meth:`run`."""

    def __init__(self, files: OnnxFiles, precision: str) -> None:
        super().__init__(precision, torch.device("cpu"))
        self.files = files

    @abstractmethod
    def run(self, graph: str, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run ``graph`` (one of :data:`GRAPHS`) on ``inputs`` in the graph's input order; the
        outputs in the graph's order, as arrays the caller may keep."""

    def detect(self, images: Tensor) -> Keypoints:
        outputs = self.run("kp_detector", [_array(images)])
        jacobian = torch.from_numpy(outputs[1]) if len(outputs) > 1 else None
        return Keypoints(torch.from_numpy(outputs[0]), jacobian)

    def prepare_source(self, image: Tensor) -> PreparedSource:
        image = image.detach().to("cpu", torch.float32)
        keypoints = self.detect(image)
        features = self.run("source_encoder", [_array(image)])[0]
        return PreparedSource(image=image, keypoints=keypoints, features=features)

    def generate(self, source: PreparedSource, kp_source: Keypoints, kp_driving: Keypoints) -> GeneratorOutput:
        # The graph takes the one source's keypoints (batch 1) and broadcasts them itself.
        inputs = [_array(source.image), source.features, *_keypoint_arrays(kp_source[:1]),
                  *_keypoint_arrays(kp_driving)]
        prediction = self.run("generator", inputs)[0]
        return GeneratorOutput(prediction=torch.from_numpy(prediction))
