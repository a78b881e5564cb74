"""What every inference backend offers: detect keypoints, encode a source once, generate frames.

Tensors in and out are fp32 ``(B, C, H, W)`` images in [0, 1] and fp32 :class:`Keypoints`
((x, y) in [-1, 1]); an engine converts them to what its runtime needs. The motion transfer
between detection and generation (:func:`fomm.relative_keypoints`) stays with the caller, in fp32.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..keypoints import Keypoints
from ..models import GeneratorOutput

__all__ = ["BACKENDS", "PRECISIONS", "Engine", "PreparedSource"]

#: Arithmetic the networks can run in; ``auto`` picks from the CPU flags and a probe (see
#: :mod:`.selection`). ``int8`` runs quantised graphs on OpenVINO (:mod:`.quantization`).
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
#: Runtimes that can run the networks; ``auto`` picks by measurement.
BACKENDS = ("auto", "torch", "onnxruntime", "openvino")


@dataclass
class PreparedSource:
    """A source image (batch 1) with its keypoints and its encoding by one engine, computed once
    and reused for every driving frame. ``features`` is the engine's own: a
    :class:`~fomm.models.SourceFeatures` for torch, arrays for the exported runtimes."""

    image: Tensor
    keypoints: Keypoints
    features: Any


class Engine(ABC):
    """One backend running the networks at one precision."""

    #: The backend's name, one of :data:`BACKENDS` (not ``auto``).
    backend: str = ""

    def __init__(self, precision: str, device: torch.device) -> None:
        self.precision = precision
        self.device = device

    @property
    def name(self) -> str:
        """``"<backend> <precision>"``, e.g. ``openvino bf16``."""
        return f"{self.backend} {self.precision}"

    @abstractmethod
    def detect(self, images: Tensor) -> Keypoints:
        """Keypoints of ``(B, C, H, W)`` images: fp32, on :attr:`device`."""

    @abstractmethod
    def prepare_source(self, image: Tensor) -> PreparedSource:
        """Keypoints and encoding of a ``(1, C, H, W)`` source image."""

    @abstractmethod
    def generate(self, source: PreparedSource, kp_source: Keypoints, kp_driving: Keypoints) -> GeneratorOutput:
        """Frames for ``B`` driving keypoint sets (``kp_source`` batch 1 or ``B``): a
        :class:`GeneratorOutput` whose ``prediction`` is fp32 ``(B, C, H, W)`` on :attr:`device`
        (the exported runtimes leave the intermediate maps None)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} on {self.device}>"
