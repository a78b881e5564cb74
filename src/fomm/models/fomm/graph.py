"""Keypoints as a graph: attention over the K keypoints, masked by a learned soft adjacency.

The FOMM keypoints are detected independently, one heatmap each. Here they become the nodes of a
graph whose edges are learned: an attention layer lets every keypoint look at the others, weighted
by a learnable non-negative ``K x K`` adjacency, and the result refines each keypoint as a residual:
``value + mix_weight * delta``. With ``mix_weight = 0``, or at initialisation (the output layer
starts at zero), the refined keypoints are exactly the detector's.

Two formulations, chosen by ``graph_params.style`` (:func:`build_keypoint_graph`):

* ``improved`` (:class:`KeypointGraph`, the default): multi-head attention over rich node features
  (value, jacobian, detector features pooled under the heatmap), the symmetric ``softplus``
  adjacency added to the scores as ``log A``; refines values and jacobians.
* ``seed`` (:class:`SeedKeypointGraph`): the formulation of the seed proposal, kept as a baseline
  for the redesign: one head on the raw coordinates, ``A = sigmoid(logits)`` multiplying the
  softmax attention as a soft mask (rows renormalised), values only, residual mix 0.3.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import GraphParams
from .keypoints import Keypoints


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


class SeedKeypointGraph(nn.Module):
    """The seed proposal's graph: single-head attention on the raw keypoint coordinates.

    For values ``p`` ``(B, K, 2)`` (x then y, in [-1, 1]) and ``hidden = graph_params.hidden_features``:
    ``W = softmax(Q K^T / sqrt(hidden)) * A`` with ``Q, K, V`` linear maps ``2 -> hidden`` of ``p``
    and ``A = sigmoid(adjacency_logits)`` ``(K, K)``, each row of ``W`` renormalised to sum to 1;
    ``delta = mix_weight * out(W V)`` with ``out: hidden -> 2``; the result is ``p + delta``. The
    jacobians pass through unchanged. ``num_heads`` and ``refine_jacobian`` do not apply (the config
    pins them to 1 and False for this style). The output layer starts at zero, as the improved
    graph's, so training starts from the detector's keypoints; the adjacency starts at 0.5 on every
    edge (logits 0, where the sigmoid's slope is largest), which masks nothing after renormalising.
    """

    def __init__(self, num_kp: int, params: GraphParams) -> None:
        super().__init__()
        hidden = params.hidden_features
        self.hidden = hidden
        self.mix_weight = params.mix_weight
        self.query = nn.Linear(2, hidden)
        self.key = nn.Linear(2, hidden)
        self.value = nn.Linear(2, hidden)
        self.out = nn.Linear(hidden, 2)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.adjacency_logits = nn.Parameter(torch.zeros(num_kp, num_kp))

    @property
    def num_heads(self) -> int:
        return 1

    def adjacency(self) -> Tensor:
        """The learned soft mask ``(K, K)`` in (0, 1): row ``i`` weighs what keypoint ``i`` attends to
        (not symmetric: the seed's adjacency is one free logit per ordered pair)."""
        return torch.sigmoid(self.adjacency_logits)

    def attention_weights(self, value: Tensor) -> Tensor:
        """``(B, K, K)`` attention of the keypoints ``value`` ``(B, K, 2)`` on each other, masked by
        the adjacency; every row sums to 1."""
        scores = self.query(value) @ self.key(value).transpose(-1, -2) / math.sqrt(self.hidden)
        masked = torch.softmax(scores, dim=-1) * self.adjacency()
        # The softmax and the sigmoid are positive, so a row sums to zero only if every edge
        # underflowed; the floor keeps that case finite (the row then attends to nothing).
        return masked / masked.sum(dim=-1, keepdim=True).clamp_min(1e-12)

    def refinement(self, value: Tensor) -> Tensor:
        """The output before mixing, ``out(W V)`` ``(B, K, 2)``; ``delta = mix_weight * refinement``."""
        return self.out(self.attention_weights(value) @ self.value(value))

    def forward(self, kp: Keypoints, heatmap: Optional[Tensor] = None,
                feature_map: Optional[Tensor] = None) -> Keypoints:
        """Refined keypoints. ``heatmap`` and ``feature_map`` are accepted for the detector's common
        call and ignored: the seed graph sees the coordinates only."""
        delta = self.mix_weight * self.refinement(kp.value)
        return Keypoints(value=kp.value + delta, jacobian=kp.jacobian)


def build_keypoint_graph(num_kp: int, feature_channels: int, params: GraphParams,
                         estimate_jacobian: bool) -> nn.Module:
    """The graph refiner of ``params.style``: :class:`KeypointGraph` (``improved``) or
    :class:`SeedKeypointGraph` (``seed``). Both take ``(keypoints, heatmap, feature_map)`` and have
    ``adjacency()``."""
    if params.style == "seed":
        return SeedKeypointGraph(num_kp, params)
    return KeypointGraph(num_kp, feature_channels, params, estimate_jacobian)


def pool_under_heatmap(feature_map: Tensor, heatmap: Tensor) -> Tensor:
    """Features ``(B, C, H, W)`` averaged under each heatmap ``(B, K, h, w)``: ``(B, K, C)``.

    Without padding the 7x7 keypoint conv makes the heatmap smaller than the feature map; each
    heatmap pixel sits at the centre of its 7x7 window, so the feature map is cropped centrally.
    """
    crop_h = (feature_map.shape[2] - heatmap.shape[2]) // 2
    crop_w = (feature_map.shape[3] - heatmap.shape[3]) // 2
    features = feature_map[:, :, crop_h:crop_h + heatmap.shape[2], crop_w:crop_w + heatmap.shape[3]]
    return torch.einsum("bkhw,bchw->bkc", heatmap, features)
