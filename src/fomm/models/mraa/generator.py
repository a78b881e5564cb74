"""Generator: encode the source, warp every encoder level by the
pixelwise flow, mask by occlusion, decode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from ...bundle import TensorBundle
from ...geometry import resize_grid, resize_map
from ..blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d, channels_at
from ..family import Rendered
from .config import MraaModelParams
from .pixelwise_flow_predictor import PixelwiseFlow, PixelwiseFlowPredictor
from .regions import Regions
from .sampling import sample

__all__ = ["EncodedSource", "Generator", "MraaRendered"]


@dataclass
class EncodedSource(TensorBundle):
    """What rendering needs of source images, computed once per source: the ``image``
    ``(B, C, H, W)``, its encoder ``features`` from full resolution (the first block's) to the
    deepest (``(B, F_i, H / 2^i, W / 2^i)``), and ``flow_input``, the image at the pixelwise flow
    predictor's resolution (None without a flow predictor)."""

    image: Tensor
    features: tuple[Tensor, ...]
    flow_input: Optional[Tensor] = None


@dataclass
class MraaRendered(Rendered):
    """A rendered batch: ``prediction`` ``(B, C, H, W)``; ``deformed`` the source warped by the
    pixelwise flow at full resolution; ``occlusion_map`` ``(B, 1, h, w)``; and the pixelwise flow
    predictor's ``optical_flow`` ``(B, h, w, 2)``, ``mask`` ``(B, K + 1, h, w)`` and
    ``sparse_deformed`` ``(B, K + 1, C, h, w)`` (see :class:`PixelwiseFlow`). ``deformation`` is
    ``optical_flow`` again, under the name every family gives its dense motion."""

    optical_flow: Optional[Tensor] = None
    mask: Optional[Tensor] = None
    sparse_deformed: Optional[Tensor] = None


class Generator(nn.Module):
    """``Generator(source, source_regions, driving_regions) -> MraaRendered``; images
    ``(B, C, H, W)`` in [0, 1].

    Johnson architecture: ``first`` (7x7), ``num_down_blocks`` down blocks, a ``bottleneck`` of
    residual blocks, as many up blocks, ``final`` (7x7) and a sigmoid. The deepest features are
    warped by the pixelwise flow and multiplied by the occlusion map before the bottleneck. With
    ``skips`` every shallower level is warped too and blended into the decoder at its resolution,
    ``O * warped + (1 - O) * decoded``, and the output image likewise with the warped source.
    Parameter names are the original's (``pixelwise_flow_predictor``, ``first``, ``down_blocks``,
    ``bottleneck.r<i>``, ``up_blocks``, ``final``).
    """

    def __init__(self, params: MraaModelParams) -> None:
        super().__init__()
        settings = params.generator_params
        self.pixelwise_flow_predictor: Optional[PixelwiseFlowPredictor] = None
        if settings.pixelwise_flow_predictor_params is not None:
            self.pixelwise_flow_predictor = PixelwiseFlowPredictor(
                settings.pixelwise_flow_predictor_params, params.num_regions, params.num_channels,
                params.revert_axis_swap)
        expansion, cap, depth = settings.block_expansion, settings.max_features, settings.num_down_blocks
        self.first = SameBlock2d(params.num_channels, expansion, kernel_size=7, padding=3)
        self.down_blocks = nn.ModuleList(
            DownBlock2d(channels_at(i, expansion, cap), channels_at(i + 1, expansion, cap)) for i in range(depth))
        self.up_blocks = nn.ModuleList(
            UpBlock2d(channels_at(depth - i, expansion, cap), channels_at(depth - i - 1, expansion, cap))
            for i in range(depth))
        self.bottleneck = nn.Sequential()
        for i in range(settings.num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(channels_at(depth, expansion, cap), kernel_size=3, padding=1))
        self.final = nn.Conv2d(expansion, params.num_channels, kernel_size=7, padding=3)
        self.skips = settings.skips

    def encode(self, source: Tensor) -> EncodedSource:
        """Encode ``(B, C, H, W)`` source images (everything that does not depend on motion)."""
        features = [self.first(source)]
        for block in self.down_blocks:
            features.append(block(features[-1]))
        flow_input = None
        if self.pixelwise_flow_predictor is not None:
            flow_input = self.pixelwise_flow_predictor.downscale(source)
        return EncodedSource(image=source, features=tuple(features), flow_input=flow_input)

    def forward(self, source: Tensor, source_regions: Regions, driving_regions: Regions) -> MraaRendered:
        return self.render(self.encode(source), source_regions, driving_regions)

    def render(self, encoded: EncodedSource, source_regions: Regions, driving_regions: Regions) -> MraaRendered:
        """Frames of the encoded source (batch 1 or B) moved from ``source_regions`` (batch 1 or
        B) to ``driving_regions`` (batch B; its ``background``, when set, moves the background)."""
        batch = driving_regions.batch_size
        encoded = encoded.expand(batch)
        if self.pixelwise_flow_predictor is None:
            # No motion: the original's decoder ignores the skips then.
            return MraaRendered(prediction=self._decode(encoded.features[-1], encoded.features, None))
        flow = self.pixelwise_flow_predictor.predict(encoded.flow_input, source_regions.expand(batch),
                                                     driving_regions)
        _, _, height, width = encoded.image.shape
        deformed = sample(encoded.image, resize_grid(flow.optical_flow, height, width))
        out = self._decode(self._apply_flow(encoded.features[-1], None, flow), encoded.features, flow)
        if self.skips:
            out = self._blend(deformed, out, flow.occlusion_map)
        return MraaRendered(prediction=out, deformed=deformed, occlusion_map=flow.occlusion_map,
                            deformation=flow.optical_flow, optical_flow=flow.optical_flow, mask=flow.mask, sparse_deformed=flow.sparse_deformed)

    def _decode(self, bottom: Tensor, features: tuple[Tensor, ...], flow: Optional[PixelwiseFlow]) -> Tensor:
        """Bottleneck, then up blocks with the warped skips blended in (with ``skips`` and a flow),
        ``final`` and the sigmoid."""
        out = self.bottleneck(bottom)
        use_skips = self.skips and flow is not None
        for i, block in enumerate(self.up_blocks):
            if use_skips:
                out = self._apply_flow(features[-(i + 1)], out, flow)
            out = block(out)
        if use_skips:
            out = self._apply_flow(features[0], out, flow)
        return torch.sigmoid(self.final(out))

    def _apply_flow(self, skip: Tensor, previous: Optional[Tensor], flow: PixelwiseFlow) -> Tensor:
        """``skip`` ``(B, F, h, w)`` warped by the flow (resized to ``h x w``), then blended."""
        _, _, height, width = skip.shape
        return self._blend(sample(skip, resize_grid(flow.optical_flow, height, width)), previous, flow.occlusion_map)

    @staticmethod
    def _blend(warped: Tensor, previous: Optional[Tensor], occlusion_map: Optional[Tensor]) -> Tensor:
        """``O * warped + (1 - O) * previous`` with the occlusion map ``O`` resized to ``warped``;
        ``O * warped`` without ``previous``; ``warped`` itself without an occlusion map (the
        original then drops ``previous``)."""
        if occlusion_map is None:
            return warped
        occlusion = resize_map(occlusion_map, warped.shape[2], warped.shape[3])
        if previous is None:
            return warped * occlusion
        return warped * occlusion + previous * (1 - occlusion)
