"""What every inference backend offers: describe motion, encode a source once, render frames.

Tensors in and out are fp32 ``(B, C, H, W)`` images in [0, 1] and fp32 motion descriptions
(:class:`~fomm.bundle.TensorBundle`, (x, y) in [-1, 1]) of the model's family; an engine
converts them to what its runtime needs. The motion transfer between describing and rendering
(:meth:`fomm.models.MotionModel.transfer`: relative, absolute, AVD) stays with the caller, in fp32
torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..bundle import TensorBundle
from ..models import Rendered

__all__ = ["BACKENDS", "PRECISIONS", "Engine", "PreparedSource"]

#: Arithmetic the networks can run in; ``auto`` picks from the CPU flags and a probe (see
#: :mod:`.selection`). ``int8`` runs quantised graphs on OpenVINO (:mod:`.quantization`).
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
#: Runtimes that can run the networks; ``auto`` picks by measurement.
BACKENDS = ("auto", "torch", "onnxruntime", "openvino")


@dataclass
class PreparedSource:
    """A source image (batch 1) with its motion description and its encoding by one engine,
    computed once and reused for every driving frame. ``state`` is the engine's own: the family's
    source state (a TensorBundle) for torch, arrays for the exported runtimes."""

    image: Tensor
    motion: TensorBundle
    state: Any


class Engine(ABC):
    """One backend running a model's networks at one precision."""

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
    def describe(self, images: Tensor) -> TensorBundle:
        """The motion description of ``(B, C, H, W)`` images: fp32, on :attr:`device`."""

    @abstractmethod
    def prepare_source(self, image: Tensor) -> PreparedSource:
        """Description and encoding of a ``(1, C, H, W)`` source image."""

    @abstractmethod
    def render(self, source: PreparedSource, driving: TensorBundle) -> Rendered:
        """Frames of the source moved to ``driving`` (batch ``B``, as
        :meth:`~fomm.models.MotionModel.transfer` made it): a :class:`Rendered` whose
        ``prediction`` is fp32 ``(B, C, H, W)`` on :attr:`device` (the exported runtimes leave the
        intermediate maps None)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} on {self.device}>"
