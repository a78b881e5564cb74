"""Occlusion-aware generator: encode the source, warp its features, mask occlusions, decode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from ...config import CommonParams, GeneratorParams
from ...bundle import TensorBundle
from ...geometry import DEFORMATION_RESIZERS, resize_map, warp
from ..family import Rendered
from ..blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d, channels_at
from .keypoints import Keypoints
from .dense_motion import DenseMotion, Motion


@dataclass
class GeneratorOutput(Rendered):
    """``prediction`` ``(B, C, H, W)`` in [0, 1] is the animated frame (with
    ``output_blend: occlusion``, already blended with ``deformed``). ``deformed`` is the source
    warped by the dense deformation at full resolution; ``mask``, ``sparse_deformed``,
    ``occlusion_map`` and ``deformation`` come from the dense motion (see :class:`Motion`); they
    are None when the generator has no dense-motion network. ``decoded`` ``(B, C, H, W)`` is the
    decoder's own image before the occlusion blend (None without ``output_blend: occlusion``, where
    it is ``prediction``)."""

    mask: Optional[Tensor] = None
    sparse_deformed: Optional[Tensor] = None
    decoded: Optional[Tensor] = None


@dataclass
class SourceFeatures(TensorBundle):
    """The source image ``(B, C, H, W)`` and its encoded features ``(B, F, H/2^n, W/2^n)``,
    computed once per source so that animating many driving frames does not re-encode it."""

    image: Tensor
    features: Tensor


class Generator(nn.Module):
    """``Generator(source, kp_source=, kp_driving=) -> GeneratorOutput``; images ``(B, C, H, W)``."""

    def __init__(self, common: CommonParams, params: GeneratorParams) -> None:
        super().__init__()
        self.dense_motion_network: Optional[DenseMotion] = None
        if params.dense_motion_params is not None:
            self.dense_motion_network = DenseMotion(params.dense_motion_params, common.num_kp,
                                                    common.num_channels, params.estimate_occlusion_map)
        expansion, cap, depth = params.block_expansion, params.max_features, params.num_down_blocks
        self.first = SameBlock2d(common.num_channels, expansion, kernel_size=7, padding=3)
        self.down_blocks = nn.ModuleList(
            DownBlock2d(channels_at(i, expansion, cap), channels_at(i + 1, expansion, cap))
            for i in range(depth)
        )
        self.up_blocks = nn.ModuleList(
            UpBlock2d(channels_at(depth - i, expansion, cap), channels_at(depth - i - 1, expansion, cap))
            for i in range(depth)
        )
        bottleneck_features = channels_at(depth, expansion, cap)
        self.bottleneck = nn.Sequential()
        for i in range(params.num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(bottleneck_features, kernel_size=3, padding=1))
        self.final = nn.Conv2d(expansion, common.num_channels, kernel_size=7, padding=3)
        self.resize_deformation = DEFORMATION_RESIZERS[params.deformation_upsampling]
        self.blend_by_occlusion = params.output_blend == "occlusion"

    def encode(self, source: Tensor) -> SourceFeatures:
        """Encode ``(B, C, H, W)`` source images."""
        features = self.first(source)
        for block in self.down_blocks:
            features = block(features)
        return SourceFeatures(image=source, features=features)

    def decode(self, features: Tensor) -> Tensor:
        """Bottleneck, up blocks, final conv and sigmoid: features → image in [0, 1]."""
        out = self.bottleneck(features)
        for block in self.up_blocks:
            out = block(out)
        return torch.sigmoid(self.final(out))

    def animate(self, source: SourceFeatures, kp_source: Keypoints, kp_driving: Keypoints) -> GeneratorOutput:
        """Generate from pre-encoded source features (see :meth:`encode`)."""
        source = source.expand(kp_driving.value.shape[0])
        if self.dense_motion_network is None:
            return GeneratorOutput(prediction=self.decode(source.features))
        motion: Motion = self.dense_motion_network(source.image, kp_source=kp_source, kp_driving=kp_driving)
        _, _, height, width = source.features.shape
        # Section 3.3: xi' = O (.) f_w(xi, T^), the encoded source warped, then masked by occlusion.
        features = warp(source.features, self.resize_deformation(motion.deformation, height, width))
        if motion.occlusion_map is not None:
            features = features * resize_map(motion.occlusion_map, height, width)
        _, _, image_height, image_width = source.image.shape
        deformed = warp(source.image, self.resize_deformation(motion.deformation, image_height, image_width))
        prediction = self.decode(features)
        decoded = None
        if self.blend_by_occlusion and motion.occlusion_map is not None:
            # Where the source is visible (O near 1) the warped source is already the answer, pixel
            # for pixel; the decoder's rebuilt image, which smooths fine texture, fills the rest.
            visible = resize_map(motion.occlusion_map, image_height, image_width)
            decoded = prediction
            prediction = visible * deformed + (1 - visible) * decoded
        return GeneratorOutput(prediction=prediction, deformed=deformed, mask=motion.mask, decoded=decoded,
                               sparse_deformed=motion.sparse_deformed, occlusion_map=motion.occlusion_map,
                               deformation=motion.deformation)

    def forward(self, source: Tensor, kp_source: Keypoints, kp_driving: Keypoints) -> GeneratorOutput:
        return self.animate(self.encode(source), kp_source=kp_source, kp_driving=kp_driving)
