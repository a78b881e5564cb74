"""Keypoint detector: heatmaps -> keypoint values and local affine jacobians (section 3.1 of the
paper: near each keypoint, motion is its value plus a first-order, affine term)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import CommonParams, GraphParams, KeypointDetectorParams
from ...geometry import coordinate_grid
from .keypoints import Keypoints
from ..blocks import AntiAliasDownsample, Hourglass, at_least_fp32, full_precision
from .graph import build_keypoint_graph


@dataclass
class KeypointDetection:
    """Everything the detector computes for a batch: the :class:`Keypoints` animation needs, and
    what training and pictures use besides: ``heatmap`` ``(B, K, h, w)`` (a softmax over each map)
    and the hourglass ``feature_map`` ``(B, C, h', w')``."""

    keypoints: Keypoints
    heatmap: Tensor
    feature_map: Tensor


class KeypointDetector(nn.Module):
    """Hourglass on an anti-aliased downscaled image, then a 7x7 conv to K heatmaps.

    ``(B, C, H, W)`` images in [0, 1] → :class:`Keypoints`. A keypoint is the expected coordinate
    under its heatmap (a softmax with ``temperature``); its jacobian is the heatmap-weighted mean of
    a 4-channel jacobian map (one map shared by all keypoints with ``single_jacobian_map``),
    initialised to the identity. With ``graph`` params the keypoints are then refined by a
    :class:`~fomm.models.fomm.graph.KeypointGraph` or, with ``style: seed``, a
    :class:`~fomm.models.fomm.graph.SeedKeypointGraph` (module ``graph``, absent otherwise, so original
    checkpoints keep their exact parameter names).
    """

    def __init__(self, common: CommonParams, params: KeypointDetectorParams,
                 graph: Optional[GraphParams] = None) -> None:
        super().__init__()
        self.num_kp = common.num_kp
        self.temperature = params.temperature
        self.scale_factor = params.scale_factor
        self.predictor = Hourglass(params.block_expansion, in_features=common.num_channels,
                                   num_blocks=params.num_blocks, max_features=params.max_features)
        self.kp = nn.Conv2d(self.predictor.out_filters, common.num_kp, kernel_size=7, padding=params.pad)
        self.jacobian: Optional[nn.Conv2d] = None
        self.num_jacobian_maps = 0
        if common.estimate_jacobian:
            self.num_jacobian_maps = 1 if params.single_jacobian_map else common.num_kp
            self.jacobian = nn.Conv2d(self.predictor.out_filters, 4 * self.num_jacobian_maps,
                                      kernel_size=7, padding=params.pad)
            # Start every jacobian at the identity: the first-order terms begin as pure translation.
            nn.init.zeros_(self.jacobian.weight)
            with torch.no_grad():
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0] * self.num_jacobian_maps))
        if self.scale_factor != 1:
            self.down = AntiAliasDownsample(common.num_channels, self.scale_factor)
        if graph is not None and graph.enabled:
            self.graph = build_keypoint_graph(common.num_kp, self.predictor.out_filters, graph,
                                              common.estimate_jacobian)
        else:
            self.graph = None

    def forward(self, image: Tensor) -> Keypoints:
        """``(B, C, H, W)`` images in [0, 1] -> keypoints ``(B, K, 2)`` with jacobians."""
        return self.detect(image).keypoints

    def detect(self, image: Tensor) -> KeypointDetection:
        """As :meth:`forward`, keeping the heatmaps and the feature map."""
        if self.scale_factor != 1:
            image = self.down(image)
        feature_map = self.predictor(image)
        logits = self.kp(feature_map)
        jacobian_map = self.jacobian(feature_map) if self.jacobian is not None else None
        # Under reduced-precision autocast the convolutions run in bf16/fp16, but the keypoints are
        # statistics of the heatmaps: they are computed in fp32 (no-op without autocast).
        with full_precision(logits):
            return self._keypoints(at_least_fp32(logits), None if jacobian_map is None else at_least_fp32(jacobian_map),
                                   feature_map)

    def _keypoints(self, logits: Tensor, jacobian_map: Optional[Tensor], feature_map: Tensor) -> KeypointDetection:
        """Heatmaps, keypoint values and jacobians from the ``(B, K, h, w)`` logits and the
        ``(B, 4 * maps, h, w)`` jacobian map."""
        batch, num_kp, height, width = logits.shape
        heatmap = F.softmax(logits.reshape(batch, num_kp, -1) / self.temperature, dim=2).view(logits.shape)

        # The keypoint is the expected coordinate under its heatmap: T_X<-R(p_k) in the paper.
        grid = coordinate_grid(height, width, dtype=heatmap.dtype, device=heatmap.device)
        value = torch.einsum("bkhw,hwc->bkc", heatmap, grid)

        # Its jacobian d/dp T_X<-R(p)|p_k (the first-order term), pooled under the same heatmap.
        jacobian = None
        if jacobian_map is not None:
            jacobian_map = jacobian_map.reshape(batch, self.num_jacobian_maps, 4, height, width)
            weighted = heatmap.unsqueeze(2) * jacobian_map
            jacobian = weighted.reshape(batch, num_kp, 4, -1).sum(dim=-1).view(batch, num_kp, 2, 2)
        keypoints = Keypoints(value=value, jacobian=jacobian)
        if self.graph is not None:
            keypoints = self.graph(keypoints, heatmap, at_least_fp32(feature_map))
        return KeypointDetection(keypoints=keypoints, heatmap=heatmap, feature_map=feature_map)
