"""Keypoints as a graph: attention over the K keypoints, masked by a learned soft adjacency.

The FOMM keypoints are detected independently, one heatmap each. Here they become the nodes of a
graph whose edges are learned: a multi-head attention layer lets every keypoint look at the
others, weighted by a learnable non-negative ``K x K`` adjacency, and the result refines each
keypoint's value (and jacobian) as a residual: ``value + mix_weight * delta``. With
``mix_weight = 0``, or at initialisation (the output layer starts at zero), the refined keypoints
are exactly the detector's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import GraphParams
from ..keypoints import Keypoints


class KeypointGraph(nn.Module):
    """Refines :class:`Keypoints` by attention over keypoints with a learned adjacency.

    Node features: the value ``(2)``, the jacobian ``(4)`` (identity when not estimated) and the
    detector's feature map pooled under the keypoint's heatmap ``(feature_channels)``.
    """

    def __init__(self, num_kp: int, feature_channels: int, params: GraphParams, estimate_jacobian: bool) -> None:
        super().__init__()
        if params.hidden_features % params.num_heads:
            raise ValueError(f"graph_params.hidden_features ({params.hidden_features}) must be divisible by "
                             f"graph_params.num_heads ({params.num_heads})")
        self.num_heads = params.num_heads
        self.mix_weight = params.mix_weight
        self.refine_jacobian = params.refine_jacobian and estimate_jacobian
        hidden = params.hidden_features
        self.embed = nn.Sequential(nn.Linear(2 + 4 + feature_channels, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, 2 + (4 if self.refine_jacobian else 0))
        # Zero output: training starts from the detector's own keypoints.
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # softplus(0.5413) = 1: every edge starts with weight 1, a fully connected graph.
        self.adjacency_logits = nn.Parameter(torch.full((num_kp, num_kp), 0.5413))

    def adjacency(self) -> Tensor:
        """The learned soft adjacency ``(K, K)``: symmetric and non-negative by construction."""
        weights = F.softplus(self.adjacency_logits)
        return (weights + weights.t()) / 2

    def node_features(self, kp: Keypoints, heatmap: Tensor, feature_map: Tensor) -> Tensor:
        """``(B, K, 6 + C)``: value, flattened jacobian and the detector's ``feature_map``
        ``(B, C, H, W)`` pooled under each keypoint's ``heatmap`` ``(B, K, h, w)``."""
        batch, num_kp, _ = kp.value.shape
        jacobian = kp.jacobian if kp.jacobian is not None else torch.eye(2, device=kp.value.device,
                                                                           dtype=kp.value.dtype).expand(batch, num_kp, 2, 2)
        parts = [kp.value, jacobian.reshape(batch, num_kp, 4)]
        parts.append(pool_under_heatmap(feature_map, heatmap))
        return torch.cat(parts, dim=-1)

    def attention(self, nodes: Tensor) -> Tensor:
        """Multi-head attention over keypoints, masked by the adjacency. ``(B, K, D) -> (B, K, D)``."""
        batch, num_kp, hidden = nodes.shape
        head = hidden // self.num_heads

        def split(x: Tensor) -> Tensor:
            return x.view(batch, num_kp, self.num_heads, head).transpose(1, 2)

        scores = split(self.query(nodes)) @ split(self.key(nodes)).transpose(-1, -2) / math.sqrt(head)
        # Adding log A multiplies each attention weight by its edge weight before normalising.
        scores = scores + torch.log(self.adjacency() + 1e-6)
        mixed = torch.softmax(scores, dim=-1) @ split(self.value(nodes))
        return mixed.transpose(1, 2).reshape(batch, num_kp, hidden)

    def forward(self, kp: Keypoints, heatmap: Tensor, feature_map: Tensor) -> Keypoints:
        """Refined keypoints; ``heatmap`` and ``feature_map`` as :meth:`node_features` takes them."""
        nodes = self.embed(self.node_features(kp, heatmap, feature_map))
        nodes = self.norm(nodes + self.attention(nodes))
        delta = self.out(nodes) * self.mix_weight
        value = kp.value + delta[..., :2]
        jacobian = kp.jacobian
        if self.refine_jacobian and jacobian is not None:
            jacobian = jacobian + delta[..., 2:].reshape(jacobian.shape)
        return Keypoints(value=value, jacobian=jacobian)


def pool_under_heatmap(feature_map: Tensor, heatmap: Tensor) -> Tensor:
    """Features ``(B, C, H, W)`` averaged under each heatmap ``(B, K, h, w)``: ``(B, K, C)``.

    Without padding the 7x7 keypoint conv makes the heatmap smaller than the feature map; each
    heatmap pixel sits at the centre of its 7x7 window, so the feature map is cropped centrally.
    """
    crop_h = (feature_map.shape[2] - heatmap.shape[2]) // 2
    crop_w = (feature_map.shape[3] - heatmap.shape[3]) // 2
    features = feature_map[:, :, crop_h:crop_h + heatmap.shape[2], crop_w:crop_w + heatmap.shape[3]]
    return torch.einsum("bkhw,bchw->bkc", heatmap, features)
