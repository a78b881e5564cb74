"""An inference-only copy of the networks with cheaper blocks that compute the same function.

Each conv block of :mod:`fomm.models.blocks` is replaced by an equivalent that does less work:

* eval-mode batch norm right after a convolution is folded into that convolution's weights and
  bias (one pass over the activations instead of two);
* "nearest 2x upsampling then a 3x3 convolution" (:class:`~fomm.models.blocks.UpBlock2d`) becomes
  four 2x2 convolutions on the small input, one per output phase, interleaved afterwards: 16
  instead of 36 multiply-adds per input pixel and channel pair, and no upsampled copy;
* ReLUs and residual additions run in place;
* in fp32 on the CPU, a residual block's 3x3 convolutions run as Winograd F(4x4, 3x3)
  (:mod:`fomm.backends.winograd`, 4x fewer multiply-adds) where that measures faster for the
  layer's shape on this machine: vox-256's 256-channel bottleneck, not small models.

The outer networks (``kp_detector``, ``generator``) keep their classes and methods, so the copy is
used exactly like the model. The rewrites only re-associate sums, so in fp32 the outputs agree
with the original blocks to rounding (measured ~1e-6 on vox-256 without Winograd, ~2e-6 relative
at its bottleneck with it; ``tests/test_precision.py``, ``tests/test_winograd.py``).
The copy is never trained or saved: its parameter names are not the checkpoint's.
"""

from __future__ import annotations

import copy
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import MotionModel
from ..models.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from .winograd import WINOGRAD_MIN_CHANNELS, winograd_conv3x3, winograd_faster, winograd_weight

__all__ = ["WINOGRAD_CHOICES", "cast_convolutions", "fold_batch_norm", "fused_copy", "has_winograd_layers",
           "subpixel_weights"]

#: ``fused_copy(winograd=...)``: measure per layer shape, always (fp32 CPU inference), never.
WINOGRAD_CHOICES = ("auto", "on", "off")


def fold_batch_norm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Weight and bias of ``norm(conv(x))`` as one convolution (``norm`` in eval mode)."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    weight = conv.weight * scale.view(-1, 1, 1, 1)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    # Both are new tensors already (products of the originals): no copy needed.
    return weight.detach(), ((bias - norm.running_mean) * scale + norm.bias).detach()


def subpixel_weights(weight: Tensor) -> Tensor:
    """``(O, I, 3, 3)`` kernel applied after nearest 2x upsampling -> ``(4 * O, I, 2, 2)``.

    Output row ``2i + a`` of the upsampled convolution reads upsampled rows ``2i + a - 1 .. 2i + a + 1``,
    which are input rows ``i - 1, i, i`` (``a = 0``) or ``i, i, i + 1`` (``a = 1``): two input rows,
    with the taps that land on the same row summed. The same holds for columns. Phase ``(a, b)`` is
    output block ``2a + b``; its 2x2 kernel starts at input row ``i - 1 + a`` and column ``j - 1 + b``.
    """
    # rows[a] maps the three vertical taps onto the two input rows that phase a reads.
    rows = weight.new_tensor([[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]])  # (phase, 2, 3)
    # taps[2a + b, 2p + q, 3k + l] = rows[a, p, k] * rows[b, q, l]: one (9 -> 16) matrix product
    # over every (out, in) channel pair; a per-phase einsum was seconds on vox-256's generator.
    taps = torch.einsum("apk,bql->abpqkl", rows, rows).reshape(16, 9)
    out_channels, in_channels = weight.shape[:2]
    phases = weight.reshape(out_channels * in_channels, 9) @ taps.T  # (O * I, 4 phases * 2 * 2)
    phases = phases.reshape(out_channels, in_channels, 4, 2, 2).permute(2, 0, 1, 3, 4)
    return phases.reshape(4 * out_channels, in_channels, 2, 2)


def _fused_kernels_available() -> bool:
    """Whether torch has oneDNN's fused convolution + pointwise kernels (CPU builds with mkldnn;
    the ones ``torch.compile`` uses on CPUs)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


_FUSED_KERNELS = _fused_kernels_available()
#: oneDNN's fused kernels refuse bf16 on CPUs without AVX-512 (BW, VL, DQ) or AVX-NE-CONVERT (an
#: AVX2 laptop, or ``ONEDNN_MAX_CPU_ISA=AVX2``); plain ``conv2d`` still runs bf16 there, emulated.
_FUSED_BF16 = _FUSED_KERNELS and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def _use_fused_kernel(x: Tensor, weight: Tensor) -> bool:
    fused = _FUSED_BF16 if weight.dtype == torch.bfloat16 else (_FUSED_KERNELS and weight.dtype == torch.float32)
    return fused and x.device.type == "cpu" and not torch.is_grad_enabled()


def conv_relu(x: Tensor, weight: Tensor, bias: Tensor, padding: tuple[int, int]) -> Tensor:
    """``relu(conv2d(x, weight, bias, padding))``, as one oneDNN kernel on the CPU (the ReLU is
    applied to the output tile while it is in cache: one pass over the activations less)."""
    if _use_fused_kernel(x, weight):
        x = x.to(weight.dtype)  # what autocast would do; the fused kernel is not autocast-aware
        return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, list(padding), [1, 1], [1, 1], 1, "relu",
                                                       [], "")
    return F.relu_(F.conv2d(x, weight, bias, padding=padding))


def conv_add(x: Tensor, weight: Tensor, bias: Tensor, padding: tuple[int, int], residual: Tensor) -> Tensor:
    """``conv2d(x, weight, bias, padding) + residual``, as one oneDNN kernel on the CPU."""
    if _use_fused_kernel(x, weight) and residual.dtype == weight.dtype:
        return torch.ops.mkldnn._convolution_pointwise.binary(x.to(weight.dtype), residual, weight, bias,
                                                              list(padding), [1, 1], [1, 1], 1, "add", 1.0, None,
                                                              [], None)
    out = F.conv2d(x, weight, bias, padding=padding)
    return out.add_(residual) if out.dtype == residual.dtype else out + residual


class ConvReLU(nn.Module):
    """``relu(conv(x))`` with batch norm folded in, then optionally 2x2 average pooling:
    :class:`SameBlock2d` (``pool=False``) and :class:`DownBlock2d` (``pool=True``)."""

    def __init__(self, conv: nn.Conv2d, norm: nn.BatchNorm2d, pool: bool) -> None:
        super().__init__()
        weight, bias = fold_batch_norm(conv, norm)
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False)
        self.padding = conv.padding
        self.pool = pool

    def forward(self, x: Tensor) -> Tensor:
        out = conv_relu(x, self.weight, self.bias, self.padding)
        return F.avg_pool2d(out, kernel_size=2) if self.pool else out


class SubpixelUpConvReLU(nn.Module):
    """:class:`UpBlock2d` (nearest 2x upsampling, 3x3 conv, batch norm, ReLU) computed on the
    small input: one convolution gives the four output phases, which are then interleaved.
    ``(B, I, H, W) -> (B, O, 2H, 2W)``.

    On maps smaller than :attr:`MIN_PIXELS` the phase convolution is slower than upsampling
    (its weights are 4/9 bigger and there is little to compute): there the block upsamples and
    runs the folded 3x3 convolution.
    """

    #: Measured on oneDNN (fp32 and bf16, 1-2 threads): the phases win from 16x16 inputs on.
    MIN_PIXELS = 256

    def __init__(self, conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
        super().__init__()
        weight, bias = fold_batch_norm(conv, norm)
        self.out_channels = weight.shape[0]
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False)
        self.phase_weight = nn.Parameter(subpixel_weights(weight), requires_grad=False)
        self.phase_bias = nn.Parameter(bias.repeat(4), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        batch, _, height, width = x.shape
        if height * width < self.MIN_PIXELS:
            upsampled = F.interpolate(x, scale_factor=2.0, mode="nearest")
            return conv_relu(upsampled, self.weight, self.bias, (1, 1))
        # Padded by one, a 2x2 kernel gives (H+1, W+1) windows; phase (a, b) uses the windows
        # starting at (i + a, j + b), i.e. input rows i - 1 + a and i + a.
        phases = conv_relu(x, self.phase_weight, self.phase_bias, (1, 1))
        channels = self.out_channels
        out = torch.empty((batch, channels, 2 * height, 2 * width), dtype=phases.dtype, device=phases.device,
                          memory_format=_memory_format(x))
        for a in (0, 1):
            for b in (0, 1):
                start = (2 * a + b) * channels
                out[:, :, a::2, b::2] = phases[:, start:start + channels, a:a + height, b:b + width]
        return out


class FusedResBlock(nn.Module):
    """:class:`ResBlock2d` with its second batch norm folded into the first convolution.

    In fp32 on the CPU its two 3x3 convolutions run as Winograd F(4x4, 3x3)
    (:mod:`fomm.backends.winograd`) where that measures faster on this machine for this shape
    (``winograd="auto"``); ``"on"`` and ``"off"`` force the choice."""

    def __init__(self, block: ResBlock2d, winograd: str = "auto") -> None:
        super().__init__()
        self.winograd = winograd if _winograd_shaped(block) else "off"
        self._taps: Optional[tuple[Tensor, Tensor]] = None
        self.norm1 = copy.deepcopy(block.norm1)
        weight1, bias1 = fold_batch_norm(block.conv1, block.norm2)
        self.weight1 = nn.Parameter(weight1, requires_grad=False)
        self.bias1 = nn.Parameter(bias1, requires_grad=False)
        self.weight2 = nn.Parameter(block.conv2.weight.detach().clone(), requires_grad=False)
        self.bias2 = nn.Parameter(block.conv2.bias.detach().clone(), requires_grad=False)
        self.padding1, self.padding2 = block.conv1.padding, block.conv2.padding

    def forward(self, x: Tensor) -> Tensor:
        reduced = _autocast_dtype(x.device.type)
        if reduced is not None:
            # The residual stream in the autocast precision too: an fp32 stream would be cast
            # for every convolution and added out of place.
            x = x.to(reduced)
        out = F.relu_(self.norm1(x))
        if self._winograd(out):
            out = winograd_conv3x3(out, self._taps[0], self.bias1).relu_()
            return winograd_conv3x3(out, self._taps[1], self.bias2).add_(x)
        out = conv_relu(out, self.weight1, self.bias1, self.padding1)
        return conv_add(out, self.weight2, self.bias2, self.padding2, x)

    def _winograd(self, x: Tensor) -> bool:
        """Whether both convolutions run as Winograd F(4x4, 3x3): 3x3 kernels (decided at
        construction), fp32 on the CPU at inference, and measured faster for this shape
        (:func:`~fomm.backends.winograd.winograd_faster`). The transformed taps (4x the weights'
        memory) are made on first use only."""
        if (self.winograd == "off" or torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32
                or self.weight1.dtype != torch.float32):
            return False
        if self._taps is None:
            self._taps = (winograd_weight(self.weight1), winograd_weight(self.weight2))
        return self.winograd == "on" or winograd_faster(x, self.weight1, self._taps[0], self.bias1)


def _autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The dtype autocast casts to on ``device_type`` now, or None when it is off."""
    try:
        enabled = torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no per-device query
        enabled = torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()
    if not enabled:
        return None
    if hasattr(torch, "get_autocast_dtype"):
        return torch.get_autocast_dtype(device_type)
    return torch.get_autocast_cpu_dtype() if device_type == "cpu" else torch.get_autocast_gpu_dtype()


def _memory_format(x: Tensor) -> torch.memory_format:
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


def _can_fold(norm: nn.Module) -> bool:
    """Batch norm with running statistics folds into a convolution; instance norm does not."""
    return (isinstance(norm, nn.BatchNorm2d) and norm.running_mean is not None and norm.running_var is not None
            and norm.affine)


def _replaced_res_block(module: nn.Module) -> bool:
    """A residual block the fused copy replaces: batch norm (not TPSMM's instance norm)."""
    return isinstance(module, ResBlock2d) and _can_fold(module.norm2)


def _winograd_shaped(block: ResBlock2d) -> bool:
    """Both convolutions 3x3 with padding 1: what Winograd F(4x4, 3x3) computes."""
    return all(conv.kernel_size == (3, 3) and conv.padding == (1, 1) for conv in (block.conv1, block.conv2))


def _fused_block(module: nn.Module, winograd: str) -> Optional[nn.Module]:
    """The cheaper equivalent of one block, or None to keep it as it is."""
    if _replaced_res_block(module):
        return FusedResBlock(module, winograd)
    if isinstance(module, (SameBlock2d, DownBlock2d)) and _can_fold(module.norm):
        return ConvReLU(module.conv, module.norm, pool=isinstance(module, DownBlock2d))
    if isinstance(module, UpBlock2d) and _can_fold(module.norm):
        conv = module.conv
        if conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.stride == (1, 1):
            return SubpixelUpConvReLU(conv, module.norm)
    return None


def has_winograd_layers(model: nn.Module) -> bool:
    """Whether ``model`` has residual blocks that the fused copy replaces (batch norm, not
    TPSMM's instance norm) and that are wide enough (:data:`~fomm.backends.winograd.WINOGRAD_MIN_CHANNELS`)
    for it to consider Winograd convolutions for them in fp32 on the CPU."""
    return any(_replaced_res_block(module) and _winograd_shaped(module)
               and min(module.conv1.in_channels, module.conv1.out_channels) >= WINOGRAD_MIN_CHANNELS
               for module in model.modules())


def _replace_blocks(parent: nn.Module, winograd: str) -> None:
    for name, child in parent.named_children():
        fused = _fused_block(child, winograd)
        if fused is not None:
            setattr(parent, name, fused)
        else:
            _replace_blocks(child, winograd)


#: Modules whose own parameters are convolution weights and biases.
_CONVOLUTIONS = (nn.Conv2d, ConvReLU, SubpixelUpConvReLU, FusedResBlock)


@torch.no_grad()
def cast_convolutions(networks: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Store the convolution weights of ``networks`` in ``dtype`` (batch norms, linear layers and
    buffers stay fp32). Under autocast to ``dtype`` the convolutions then find their weights
    ready instead of casting them on every call (autocast caches casts only of weights that
    require grad)."""
    for module in networks.modules():
        if isinstance(module, _CONVOLUTIONS):
            for parameter in module.parameters(recurse=False):
                parameter.data = parameter.data.to(dtype)
    return networks


@torch.no_grad()
def fused_copy(model: MotionModel, channels_last: bool = True, winograd: str = "auto") -> MotionModel:
    """An eval-mode copy of ``model`` for inference, blocks replaced as the module doc says.

    Networks used only in training (``model.training_only``: a discriminator) are not copied.
    With ``channels_last`` the 4-D weights are stored NHWC, which oneDNN's convolutions prefer
    (and need for bf16 on AMX). ``winograd`` (one of :data:`WINOGRAD_CHOICES`) says whether the
    residual blocks' fp32 convolutions may run as Winograd F(4x4, 3x3) on the CPU.
    """
    if winograd not in WINOGRAD_CHOICES:
        raise ValueError(f"winograd must be one of {', '.join(WINOGRAD_CHOICES)}, not {winograd!r}")
    left_out = {name: getattr(model, name) for name in model.training_only if getattr(model, name, None) is not None}
    try:
        for name in left_out:
            setattr(model, name, None)
        fused = copy.deepcopy(model)
    finally:
        for name, network in left_out.items():
            setattr(model, name, network)
    fused.eval().requires_grad_(False)
    _replace_blocks(fused, winograd)
    if channels_last:
        fused = fused.to(memory_format=torch.channels_last)
    return fused
