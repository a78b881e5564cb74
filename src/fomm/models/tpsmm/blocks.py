"""TPSMM's convolution blocks and hourglass: those of :mod:`fomm.models.blocks` with instance
normalisation (affine, no running statistics) where FOMM has batch normalisation, and an hourglass
that returns every decoder level (the dense motion network predicts occlusion masks from several).

Attribute names are the original's (``conv``, ``norm``, ``conv1``/``norm1``, ``encoder.down_blocks``,
``decoder.up_blocks``), so its state dicts load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..blocks import channels_at

__all__ = ["DownBlock2d", "Hourglass", "ResBlock2d", "SameBlock2d", "UpBlock2d"]


def _instance_norm(features: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(features, affine=True)


class ResBlock2d(nn.Module):
    """Pre-activation residual block (IN, ReLU, conv, IN, ReLU, conv) keeping shape ``(B, C, H, W)``."""

    def __init__(self, features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(features, features, kernel_size, padding=padding)
        self.norm1 = _instance_norm(features)
        self.norm2 = _instance_norm(features)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class UpBlock2d(nn.Module):
    """Nearest 2x upsampling, conv, IN, ReLU: ``(B, in, H, W) -> (B, out, 2H, 2W)``."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = _instance_norm(out_features)

    def forward(self, x: Tensor) -> Tensor:
        out = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.norm(self.conv(out)))


class DownBlock2d(nn.Module):
    """Conv, IN, ReLU, 2x2 average pooling: ``(B, in, H, W) -> (B, out, H/2, W/2)``."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = _instance_norm(out_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), kernel_size=2)


class SameBlock2d(nn.Module):
    """Conv, IN, ReLU at the same resolution."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = _instance_norm(out_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(self.conv(x)))


class HourglassEncoder(nn.Module):
    """``num_blocks`` down blocks; returns the input and every block's output (for the skips)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(in_features if i == 0 else channels_at(i, block_expansion, max_features),
                        channels_at(i + 1, block_expansion, max_features))
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

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        blocks = []
        #: Channels of each returned level, coarsest first.
        self.level_channels: list[int] = []
        for i in reversed(range(num_blocks)):
            # Below the bottom level the input is the concatenation of an up block and a skip.
            multiplier = 1 if i == num_blocks - 1 else 2
            blocks.append(UpBlock2d(multiplier * channels_at(i + 1, block_expansion, max_features),
                                    channels_at(i, block_expansion, max_features)))
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
    """U-Net-like encoder/decoder returning every decoder level.

    ``(B, in_features, H, W)`` -> list of ``num_blocks`` maps, level ``j`` (0 = coarsest) of shape
    ``(B, level_channels[j], H / 2**(num_blocks - 1 - j), W / 2**(...))``; the last is at full
    resolution with ``block_expansion + in_features`` channels. ``H``, ``W`` divisible by
    ``2**num_blocks``.
    """

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        self.encoder = HourglassEncoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = HourglassDecoder(block_expansion, in_features, num_blocks, max_features)
        self.level_channels = self.decoder.level_channels

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.decoder(self.encoder(x))
