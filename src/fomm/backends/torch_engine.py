"""The PyTorch backend: the networks as they are, or their fused channels-last copy, in fp32 or
under bf16/fp16 autocast, on any device torch runs on."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Callable, ContextManager

import torch
from torch import Tensor

from ..bundle import TensorBundle
from ..errors import UserError
from ..models import MotionModel, Rendered
from .base import Engine, PreparedSource
from .fused import cast_convolutions, fused_copy

logger = logging.getLogger(__name__)

__all__ = ["TorchEngine"]

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class TorchEngine(Engine):
    """``model`` run by PyTorch on the model's device.

    With ``optimize`` (default) the networks run as a fused copy (batch norm folded, sub-pixel
    up-convolutions, :func:`~fomm.backends.fused.fused_copy`) in channels-last memory format on
    the CPU and CUDA: in fp32 within ~1e-6 of the model itself, and the layout oneDNN needs for
    AMX bf16. ``bf16``/``fp16`` run the convolutions under autocast; keypoint statistics and
    sampling grids stay fp32 inside the networks. ``compile`` wraps the networks in
    ``torch.compile`` (a cold start of tens of seconds per input shape: opt-in).
    """

    backend = "torch"

    def __init__(self, model: MotionModel, precision: str = "fp32", optimize: bool = True, compile: bool = False) -> None:
        device = model.device
        if precision not in ("fp32", *_AUTOCAST_DTYPES):
            raise UserError(f"the torch backend runs fp32, bf16 or fp16, not {precision!r}")
        super().__init__(precision, device)
        model.eval()
        self.channels_last = optimize and device.type in ("cpu", "cuda")
        self.networks = fused_copy(model, channels_last=self.channels_last) if optimize else model
        if optimize and precision in _AUTOCAST_DTYPES:
            cast_convolutions(self.networks, _AUTOCAST_DTYPES[precision])
        self._describe: Callable = self.networks.describe
        self._encode: Callable = self.networks.encode_source
        self._render: Callable = self.networks.render
        if compile:
            logger.info("compiling the networks with torch.compile (the first frames take a while)")
            self._describe, self._encode, self._render = (torch.compile(function)
                                                          for function in (self._describe, self._encode, self._render))

    def _autocast(self) -> ContextManager:
        dtype = _AUTOCAST_DTYPES.get(self.precision)
        return nullcontext() if dtype is None else torch.autocast(self.device.type, dtype=dtype)

    def _input(self, images: Tensor) -> Tensor:
        images = images.to(self.device, dtype=torch.float32)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def describe(self, images: Tensor) -> TensorBundle:
        with self._autocast():
            return self._describe(self._input(images)).float()

    def prepare_source(self, image: Tensor) -> PreparedSource:
        image = self._input(image)
        with self._autocast():
            motion = self._describe(image).float()
            state = self._encode(image)
        return PreparedSource(image=image, motion=motion, state=state)

    def render(self, source: PreparedSource, driving: TensorBundle) -> Rendered:
        with self._autocast():
            output = self._render(source.state, source.motion, driving)
        output.prediction = output.prediction.float().contiguous()
        return output
