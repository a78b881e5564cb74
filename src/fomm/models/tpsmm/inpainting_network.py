"""TPSMM's inpainting network (section 3.3): an encoder of the source image, whose feature maps are
warped by the dense motion and masked by the occlusion masks at every level, and a decoder that
fills what the masks remove.

Encoder: ``first`` (7x7 conv) then ``num_down_blocks`` down blocks; the maps, finest first, are
computed once per source (:meth:`InpaintingNetwork.encode`). Decoder, from the coarsest level: warp
and mask the encoder's map, two residual blocks, an up block, then concatenate the next finer
warped and masked map, and so on. At full resolution the decoder's output is blended with the
warped first map and, after ``final`` and a sigmoid, with the warped source image:

    out = (1 - O) * decoded + O * warp(source)

where ``O`` is the finest occlusion mask (1 where the source is visible).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...bundle import TensorBundle
from ...geometry import warp
from ..blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d, channels_at, instance_norm
from .config import CommonParams, GeneratorParams
from .dense_motion import TpsMotion

__all__ = ["Inpainted", "InpaintingNetwork"]


@dataclass
class Inpainted(TensorBundle):
    """The inpainting network's result for a batch of ``B`` frames.

    ``prediction`` ``(B, C, H, W)`` in [0, 1]; ``deformed`` ``(B, C, H, W)``: the source warped by the
    dense motion; ``occlusion_map`` ``(B, 1, H, W)``: the mask of the final blend.
    ``warped_encoder_maps``: the source's encoder maps warped and masked, coarsest first (what the
    warp loss compares with the driving frame's; in training they are cut from the graph except
    through the deformation, as the original's).
    """

    prediction: Tensor
    deformed: Tensor
    occlusion_map: Tensor
    warped_encoder_maps: tuple[Tensor, ...]


def resize_deformation(deformation: Tensor, height: int, width: int) -> Tensor:
    """Bilinearly resize a ``(B, h, w, 2)`` flow to ``(B, height, width, 2)``, ``align_corners=True``
    (TPSMM's choice; FOMM's generator resizes with ``False``)."""
    if deformation.shape[1:3] == (height, width):
        return deformation
    resized = F.interpolate(deformation.permute(0, 3, 1, 2), size=(height, width), mode="bilinear",
                            align_corners=True)
    return resized.permute(0, 2, 3, 1)


class InpaintingNetwork(nn.Module):
    """``encode(source) -> maps``; ``forward(source, maps, motion) -> Inpainted``.

    Attributes as the original: ``first``, ``down_blocks``, ``up_blocks`` and ``resblock`` (both
    coarsest first), ``final``.
    """

    def __init__(self, common: CommonParams, params: GeneratorParams) -> None:
        super().__init__()
        self.num_channels = common.num_channels
        self.multi_mask = common.multi_mask
        levels = params.num_down_blocks
        width = [channels_at(i, params.block_expansion, params.max_features) for i in range(levels + 1)]
        self.first = SameBlock2d(common.num_channels, params.block_expansion, kernel_size=7, padding=3,
                                 norm=instance_norm)
        self.down_blocks = nn.ModuleList(DownBlock2d(width[i], width[i + 1], norm=instance_norm) for i in range(levels))
        up_blocks, res_blocks = [], []
        for i in reversed(range(levels)):
            # The decoder's input at level i+1: the warped map alone at the bottom, else concatenated
            # with the decoder's output of the level below.
            decoder_in = width[i + 1] if i == levels - 1 else 2 * width[i + 1]
            up_blocks.append(UpBlock2d(decoder_in, width[i], norm=instance_norm))
            res_blocks += [ResBlock2d(decoder_in, norm=instance_norm), ResBlock2d(decoder_in, norm=instance_norm)]
        self.up_blocks = nn.ModuleList(up_blocks)
        self.resblock = nn.ModuleList(res_blocks)
        self.final = nn.Conv2d(params.block_expansion, common.num_channels, kernel_size=7, padding=3)

    def encode(self, image: Tensor) -> tuple[Tensor, ...]:
        """The encoder maps of ``(B, C, H, W)`` images, finest first: ``num_down_blocks + 1`` maps,
        level ``i`` of shape ``(B, channels_i, H / 2**i, W / 2**i)``."""
        maps = [self.first(image)]
        for block in self.down_blocks:
            maps.append(block(maps[-1]))
        return tuple(maps)

    def forward(self, source: Tensor, encoder_maps: tuple[Tensor, ...], motion: TpsMotion) -> Inpainted:
        """``source`` ``(B, C, H, W)`` and its :meth:`encode` maps, moved by ``motion`` (batch B)."""
        deformation = motion.deformation
        levels = len(self.down_blocks)
        out, warped_for_loss = self._warp_and_mask(encoder_maps[-1], deformation, self._occlusion(motion, 0))
        warped_maps = [warped_for_loss]
        for i in range(levels):
            out = self.resblock[2 * i + 1](self.resblock[2 * i](out))
            out = self.up_blocks[i](out)
            skip, skip_for_loss = self._warp_and_mask(encoder_maps[-(i + 2)], deformation,
                                                      self._occlusion(motion, i + 1))
            warped_maps.append(skip_for_loss)
            if i < levels - 1:
                out = torch.cat([out, skip], dim=1)

        deformed = warp(source, resize_deformation(deformation, *source.shape[2:]))
        occlusion = self._resized_mask(motion.occlusion_maps[-1], out)
        out = out * (1 - occlusion) + skip
        out = torch.sigmoid(self.final(out))
        prediction = out * (1 - occlusion) + deformed * occlusion
        return Inpainted(prediction=prediction, deformed=deformed, occlusion_map=occlusion,
                         warped_encoder_maps=tuple(warped_maps))

    def encode_visible(self, image: Tensor, occlusion_maps: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """The warp loss's targets: the encoder maps of the driving ``image``, finest first, each
        masked by the occlusion mask of its resolution; cut from the graph (the original
        ``get_encode``: the warp loss trains the motion, not the encoder)."""
        with torch.no_grad():
            maps = self.encode(image)
        masked = []
        for level, feature in enumerate(maps):
            mask_index = len(occlusion_maps) - 1 - level if self.multi_mask else 0
            masked.append(feature * self._resized_mask(occlusion_maps[mask_index].detach(), feature))
        return tuple(masked)

    def _occlusion(self, motion: TpsMotion, level_from_coarsest: int) -> Tensor:
        return motion.occlusion_maps[level_from_coarsest if self.multi_mask else 0]

    def _resized_mask(self, occlusion: Tensor, like: Tensor) -> Tensor:
        """With one mask (no ``multi_mask``) it is resized to each feature map (bilinear,
        ``align_corners=True``); the multi-resolution masks already fit."""
        if self.multi_mask or occlusion.shape[2:] == like.shape[2:]:
            return occlusion
        return F.interpolate(occlusion, size=like.shape[2:], mode="bilinear", align_corners=True)

    def _warp_and_mask(self, feature: Tensor, deformation: Tensor, occlusion: Tensor) -> tuple[Tensor, Tensor]:
        """The feature map warped by the deformation and masked: for the decoder, and for the warp
        loss, where the gradient reaches only the deformation (the same tensor when no gradient is
        being recorded)."""
        grid = resize_deformation(deformation, *feature.shape[2:])
        occlusion = self._resized_mask(occlusion, feature)
        masked = warp(feature, grid) * occlusion
        if not torch.is_grad_enabled():
            return masked, masked
        return masked, warp(feature.detach(), grid) * occlusion.detach()

