"""Building blocks shared by the networks: conv blocks, the hourglass, anti-aliased downsampling.

Attribute names (``conv``, ``norm``, ``down_blocks``, ``up_blocks``, ``encoder``, ``decoder``,
``weight``) are those of the original implementation, so its state dicts load unchanged.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def full_precision(like: Tensor) -> AbstractContextManager:
    """A region where autocast is off, for the numerically delicate steps (keypoint statistics,
    sampling grids) of networks that otherwise run in bf16/fp16. Without autocast it changes
    nothing. Widen the region's inputs with :func:`at_least_fp32`: tensors made under autocast
    stay reduced."""
    return torch.autocast(like.device.type, enabled=False)


def at_least_fp32(tensor: Tensor) -> Tensor:
    """``tensor`` in fp32 if it is bf16 or fp16, unchanged otherwise (fp64 stays fp64)."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


def channels_at(level: int, block_expansion: int, max_features: int) -> int:
    """Channel count at a depth level: ``block_expansion * 2**level`` capped at ``max_features``."""
    return min(max_features, block_expansion * (2 ** level))


#: Makes the normalisation layer of a block for a channel count.
Norm = Callable[[int], nn.Module]


def batch_norm(features: int) -> nn.Module:
    """FOMM's and MRAA's normalisation (folded into the convolutions by the fused engine)."""
    return nn.BatchNorm2d(features, affine=True)


def instance_norm(features: int) -> nn.Module:
    """TPSMM's normalisation: instance statistics, affine, no running statistics."""
    return nn.InstanceNorm2d(features, affine=True)


class ResBlock2d(nn.Module):
    """Pre-activation residual block (norm, ReLU, conv, norm, ReLU, conv) that keeps the shape
    ``(B, C, H, W)``."""

    def __init__(self, features: int, kernel_size: int = 3, padding: int = 1, norm: Norm = batch_norm) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(features, features, kernel_size, padding=padding)
        self.norm1 = norm(features)
        self.norm2 = norm(features)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class UpBlock2d(nn.Module):
    """Nearest 2x upsampling, conv, norm, ReLU: ``(B, in, H, W) -> (B, out, 2H, 2W)``."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1,
                 norm: Norm = batch_norm) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = norm(out_features)

    def forward(self, x: Tensor) -> Tensor:
        out = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.norm(self.conv(out)))


class DownBlock2d(nn.Module):
    """Conv, norm, ReLU, 2x2 average pooling: ``(B, in, H, W) -> (B, out, H/2, W/2)``."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1,
                 norm: Norm = batch_norm) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = norm(out_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), kernel_size=2)


class SameBlock2d(nn.Module):
    """Conv, norm, ReLU at the same resolution."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1,
                 norm: Norm = batch_norm) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = norm(out_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(self.conv(x)))


class HourglassEncoder(nn.Module):
    """``num_blocks`` down blocks; returns the input and every block's output (for skips)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int,
                 norm: Norm = batch_norm) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(in_features if i == 0 else channels_at(i, block_expansion, max_features),
                        channels_at(i + 1, block_expansion, max_features), norm=norm)
            for i in range(num_blocks)
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs = [x]
        for block in self.down_blocks:
            outputs.append(block(outputs[-1]))
        return outputs


class HourglassDecoder(nn.Module):
    """``num_blocks`` up blocks, each followed by concatenation with the matching skip; returns
    every concatenation, coarsest first (the last is at the input's resolution)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int,
                 norm: Norm = batch_norm) -> None:
        super().__init__()
        blocks = []
        #: Channels of each returned level, coarsest first.
        self.level_channels: list[int] = []
        for i in reversed(range(num_blocks)):
            # Below the bottom level the input is the concatenation of an up block and a skip.
            multiplier = 1 if i == num_blocks - 1 else 2
            blocks.append(UpBlock2d(multiplier * channels_at(i + 1, block_expansion, max_features),
                                    channels_at(i, block_expansion, max_features), norm=norm))
            skip = in_features if i == 0 else channels_at(i, block_expansion, max_features)
            self.level_channels.append(channels_at(i, block_expansion, max_features) + skip)
        self.up_blocks = nn.ModuleList(blocks)

    def forward(self, skips: list[Tensor]) -> list[Tensor]:
        out = skips[-1]
        levels = []
        for block, skip in zip(self.up_blocks, reversed(skips[:-1])):
            out = torch.cat([block(out), skip], dim=1)
            levels.append(out)
        return levels


class Hourglass(nn.Module):
    """U-Net-like encoder/decoder: ``(B, in_features, H, W) -> (B, out_filters, H, W)``, where
    ``out_filters = block_expansion + in_features``; :meth:`levels` gives every decoder level
    (TPSMM's dense motion predicts occlusion masks from several).

    ``H`` and ``W`` must be divisible by ``2**num_blocks``.
    """

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256,
                 norm: Norm = batch_norm) -> None:
        super().__init__()
        self.encoder = HourglassEncoder(block_expansion, in_features, num_blocks, max_features, norm)
        self.decoder = HourglassDecoder(block_expansion, in_features, num_blocks, max_features, norm)
        #: Channels of each of :meth:`levels`, coarsest first.
        self.level_channels = self.decoder.level_channels
        self.out_filters = self.level_channels[-1]
        self.num_blocks = num_blocks

    def levels(self, x: Tensor) -> list[Tensor]:
        """Every decoder level, coarsest first: level ``j`` has ``level_channels[j]`` channels at
        ``1 / 2**(num_blocks - 1 - j)`` of the input's resolution."""
        return self.decoder(self.encoder(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.levels(x)[-1]


def mlp(widths: tuple[int, ...] | list[int]) -> nn.Sequential:
    """Linear, BatchNorm1d, ReLU for every hidden width, then a last Linear: the AVD networks'
    layers. The layer indices (``0``, ``1``, ``3``, ...) are the originals' parameter names."""
    layers: list[nn.Module] = []
    for width_in, width_out in zip(widths[:-2], widths[1:-1]):
        layers += [nn.Linear(width_in, width_out), nn.BatchNorm1d(width_out), nn.ReLU()]
    layers.append(nn.Linear(widths[-2], widths[-1]))
    return nn.Sequential(*layers)


class AntiAliasDownsample(nn.Module):
    """Gaussian blur then keep every ``int(1/scale)``-th pixel, starting at index 0.

    The gaussian has sigma ``(1/scale - 1) / 2`` and a ``2*round(4*sigma) + 1`` kernel, stored as
    the buffer ``weight`` ``(C, 1, k, k)`` as in the original (it is part of the checkpoints).
    ``scale == 1`` is the identity.
    """

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.step = int(1 / scale)
        sigma = (1 / scale - 1) / 2
        kernel_size = 2 * round(sigma * 4) + 1
        self.pad_before = kernel_size // 2
        self.pad_after = self.pad_before - 1 if kernel_size % 2 == 0 else self.pad_before
        self.register_buffer("weight", self._gaussian_kernel(channels, kernel_size, sigma))

    @staticmethod
    def _gaussian_kernel(channels: int, kernel_size: int, sigma: float) -> Tensor:
        positions = torch.arange(kernel_size, dtype=torch.float32)
        mean = (kernel_size - 1) / 2
        if sigma > 0:
            profile = torch.exp(-(positions - mean) ** 2 / (2 * sigma ** 2))
        else:
            profile = torch.ones(kernel_size)
        kernel = profile[:, None] * profile[None, :]
        kernel = kernel / kernel.sum()
        return kernel.view(1, 1, kernel_size, kernel_size).repeat(channels, 1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        if self.scale == 1.0:
            return x
        pad = (self.pad_before, self.pad_after, self.pad_before, self.pad_after)
        # Strided: only the kept pixels are computed (the same sums as blurring everything and
        # keeping every step-th pixel from index 0).
        return F.conv2d(F.pad(x, pad), self.weight.to(x.dtype), stride=self.step, groups=self.weight.shape[0])


class ImagePyramid(nn.Module):
    """Anti-aliased copies of an image at several scales, keyed ``prediction_<scale>``.

    Module keys replace '.' by '-' (``ModuleDict`` forbids dots), as the original did.
    """

    def __init__(self, scales: list[float], num_channels: int) -> None:
        super().__init__()
        self.downs = nn.ModuleDict({scale_key(s): AntiAliasDownsample(num_channels, s) for s in scales})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {f"prediction_{key.replace('-', '.')}": down(x) for key, down in self.downs.items()}


def scale_key(scale: float) -> str:
    """ModuleDict key of a scale as the original wrote it: ``str(scale)`` with '.' -> '-'.

    YAML ``1`` is an int and gives ``'1'``; our config stores floats, so whole numbers are written
    without the decimal part to keep the original names (``discs.1.*``).
    """
    if float(scale).is_integer():
        return str(int(scale))
    return str(scale).replace(".", "-")

