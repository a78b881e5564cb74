"""Keypoint detector: heatmaps → keypoint values and local affine jacobians."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import CommonParams, GraphParams, KeypointDetectorParams
from ..geometry import coordinate_grid
from .blocks import AntiAliasDownsample, Hourglass


@dataclass
class Keypoints:
    """Keypoints of a batch of images.

    ``value`` is ``(B, K, 2)``, (x, y) in [-1, 1]. ``jacobian`` is ``(B, K, 2, 2)`` (the local
    affine map d(position)/d(coordinate) around each keypoint) or None when not estimated.
    ``heatmap`` ``(B, K, h, w)`` (softmax over each map) and ``feature_map`` are filled in by the
    detector for losses, visualisation and the graph refiner; they are None otherwise.
    """

    value: Tensor
    jacobian: Optional[Tensor] = None
    heatmap: Optional[Tensor] = None
    feature_map: Optional[Tensor] = None

    def detach(self) -> "Keypoints":
        """A copy cut from the autograd graph (value and jacobian only)."""
        return Keypoints(self.value.detach(), None if self.jacobian is None else self.jacobian.detach())

    def to(self, *args, **kwargs) -> "Keypoints":
        return Keypoints(self.value.to(*args, **kwargs),
                         None if self.jacobian is None else self.jacobian.to(*args, **kwargs))

    def __getitem__(self, index) -> "Keypoints":
        """Select batch elements, e.g. ``kp[0:1]``."""
        return Keypoints(self.value[index], None if self.jacobian is None else self.jacobian[index])

    def expand(self, batch: int) -> "Keypoints":
        """Broadcast keypoints of batch 1 to ``batch`` elements without copying."""
        if self.value.shape[0] == batch:
            return self
        return Keypoints(self.value.expand(batch, -1, -1),
                         None if self.jacobian is None else self.jacobian.expand(batch, -1, -1, -1))

    @property
    def num_kp(self) -> int:
        return self.value.shape[-2]


class KeypointDetector(nn.Module):
    """Hourglass on an anti-aliased downscaled image, then a 7x7 conv to K heatmaps.

    ``(B, C, H, W)`` images in [0, 1] → :class:`Keypoints`. A keypoint is the expected coordinate
    under its heatmap (a softmax with ``temperature``); its jacobian is the heatmap-weighted mean of
    a 4-channel jacobian map (one map shared by all keypoints with ``single_jacobian_map``),
    initialised to the identity. With ``graph`` params the keypoints are then refined by a
    :class:`~fomm.models.graph.KeypointGraph` (module ``graph``, absent otherwise, so original
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
            from .graph import KeypointGraph

            self.graph = KeypointGraph(common.num_kp, self.predictor.out_filters, graph, common.estimate_jacobian)
        else:
            self.graph = None

    def forward(self, image: Tensor) -> Keypoints:
        if self.scale_factor != 1:
            image = self.down(image)
        feature_map = self.predictor(image)
        logits = self.kp(feature_map)
        batch, num_kp, height, width = logits.shape
        heatmap = F.softmax(logits.view(batch, num_kp, -1) / self.temperature, dim=2).view(logits.shape)

        grid = coordinate_grid(height, width, dtype=heatmap.dtype, device=heatmap.device)
        value = torch.einsum("bkhw,hwc->bkc", heatmap, grid)

        jacobian = None
        if self.jacobian is not None:
            jacobian_map = self.jacobian(feature_map).view(batch, self.num_jacobian_maps, 4, height, width)
            weighted = heatmap.unsqueeze(2) * jacobian_map
            jacobian = weighted.view(batch, num_kp, 4, -1).sum(dim=-1).view(batch, num_kp, 2, 2)
        keypoints = Keypoints(value=value, jacobian=jacobian, heatmap=heatmap, feature_map=feature_map)
        return keypoints if self.graph is None else self.graph(keypoints)
