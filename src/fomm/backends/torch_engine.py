"""The PyTorch backend: the networks as they are, or their fused channels-last copy, in fp32 or
under bf16/fp16 autocast, on any device torch runs on."""

from __future__ import annotations

import logging
import weakref
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

__all__ = ["TorchEngine", "shared_networks"]

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

# The fused networks built in this process, per model object and settings, with the model's
# weight version when they were built: (precision, channels_last, device) -> (version, networks).
# Weak on the model, so they go when it goes.
_shared: "weakref.WeakKeyDictionary[MotionModel, dict[tuple, tuple[int, MotionModel]]]" = weakref.WeakKeyDictionary()


def _weights_version(model: MotionModel) -> int:
    """Sum of the in-place version counters of the model's tensors: training and
    ``load_state_dict`` bump them, so a changed model is never served stale networks."""
    return sum(tensor._version for tensor in model.state_dict(keep_vars=True).values())


def shared_networks(model: MotionModel, precision: str, channels_last: bool) -> MotionModel:
    """The fused copy of ``model`` for ``precision`` (convolution weights cast for bf16/fp16),
    built once per model object, settings and weights in this process: a second engine (a second
    :class:`~fomm.Animator`) for the same model starts without rebuilding it (seconds for vox-256).
    The copy is read-only at inference, so engines may share it."""
    key = (precision, channels_last, str(model.device))
    version = _weights_version(model)
    built = _shared.setdefault(model, {}).get(key)
    if built is not None and built[0] == version:
        return built[1]
    networks = fused_copy(model, channels_last=channels_last)
    if precision in _AUTOCAST_DTYPES:
        cast_convolutions(networks, _AUTOCAST_DTYPES[precision])
    _shared[model][key] = (version, networks)
    return networks


class TorchEngine(Engine):
    """``model`` run by PyTorch on the model's device.

    With ``optimize`` (default) the networks run as a fused copy (batch norm folded, sub-pixel
    up-convolutions, on the CPU in fp32 Winograd convolutions in wide residual blocks where they
    measure faster: :func:`~fomm.backends.fused.fused_copy`) in channels-last memory format on
    the CPU and CUDA: in fp32 within rounding of the model itself (~1e-6), and the layout oneDNN
    needs for AMX bf16. ``bf16``/``fp16`` run the convolutions under autocast; keypoint statistics
    and sampling grids stay fp32 inside the networks. ``compile`` wraps the networks in
    ``torch.compile`` (a cold start of tens of seconds per input shape: opt-in). The fused copy
    is built once per model and settings in a process (:func:`shared_networks`).
    """

    backend = "torch"

    def __init__(self, model: MotionModel, precision: str = "fp32", optimize: bool = True, compile: bool = False) -> None:
        device = model.device
        if precision not in ("fp32", *_AUTOCAST_DTYPES):
            raise UserError(f"the torch backend runs fp32, bf16 or fp16, not {precision!r}"
                            + (" (int8 runs on --backend openvino)" if precision == "int8" else ""))
        super().__init__(precision, device)
        model.eval()
        self.channels_last = optimize and device.type in ("cpu", "cuda")
        self.networks = shared_networks(model, precision, self.channels_last) if optimize else model
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
