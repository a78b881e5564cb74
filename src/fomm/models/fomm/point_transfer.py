"""A learned correction of relative motion: :class:`PointTransfer` (ours, FOMM models with jacobians).

The paper's relative motion moves each source keypoint by the driving keypoint's displacement,
``S(0) + D(t) - D(0)`` (:func:`~fomm.models.fomm.keypoints.relative_keypoints`). Where the two
figures' proportions differ (a longer arm, a wider stance) that lands off the pose the source
figure would take, and the renderer draws it there. :class:`PointTransfer` sees the three whole
keypoint sets (source, initial driving, current driving; values and jacobians, each set centred on
its own mean point, so it sees shapes rather than places) and the relative result, and adds a
correction to it. Its last layer starts at zero: untrained, it *is* the relative transfer, to the
last bit. It is trained through a frozen model on cross-identity pairs with ground truth
(``scripts/learned_transfer.py``), and ``fomm animate --motion learned`` runs it (the default for a
model that has one; see :meth:`~fomm.models.fomm.FommModel.transfer`).

Points as the network sees them are ``(B, K, 6)``: x, y in [-1, 1], then the jacobian's four
entries row by row (:func:`as_points`).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ...config import PointTransferParams
from .keypoints import Keypoints, relative_keypoints

__all__ = ["POINT_SIZE", "PointTransfer", "as_keypoints", "as_points"]

#: A keypoint as the network sees it: x, y, then the jacobian's four entries row by row.
POINT_SIZE = 6
#: The point sets the network reads: source, initial driving, driving, and the relative result.
POINT_SETS = 4


def as_points(keypoints: Keypoints) -> Tensor:
    """``(B, K, 6)``: values ``(B, K, 2)`` then flattened jacobians ``(B, K, 4)``."""
    if keypoints.jacobian is None:
        raise ValueError("the point transfer needs keypoints with jacobians (common_params.estimate_jacobian)")
    return torch.cat([keypoints.value, keypoints.jacobian.flatten(2)], dim=-1)


def as_keypoints(points: Tensor) -> Keypoints:
    """The inverse of :func:`as_points`."""
    return Keypoints(value=points[..., :2].contiguous(), jacobian=points[..., 2:].unflatten(-1, (2, 2)).contiguous())


class PointTransfer(nn.Module):
    """Relative transfer plus a learned correction from the whole keypoint sets.

    ``num_layers`` linear layers of ``hidden_features`` (GELU) read the four centred point sets of
    all ``num_kp`` keypoints at once; a last linear layer, zero at the start, gives the correction
    ``(B, K, 6)``. ``extra_features``: features per keypoint that a caller adds (an experiment's
    image features; 0 for the networks checkpoints carry).
    """

    def __init__(self, num_kp: int, params: PointTransferParams, extra_features: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = num_kp * (POINT_SETS * POINT_SIZE + extra_features)
        for _ in range(params.num_layers):
            layers += [nn.Linear(width, params.hidden_features), nn.GELU()]
            width = params.hidden_features
        self.body = nn.Sequential(*layers)
        self.correction = nn.Linear(width, num_kp * POINT_SIZE)
        nn.init.zeros_(self.correction.weight)  # starts as the relative transfer itself
        nn.init.zeros_(self.correction.bias)

    def forward(self, source: Keypoints, driving: Keypoints, initial: Keypoints, adapt_movement_scale: bool = False,
                use_relative_jacobian: bool = True, extra: Optional[Tensor] = None) -> Keypoints:
        """Keypoints to render for ``driving`` (batch ``B``), given the source's and the initial
        driving frame's (batch ``B`` each). The relative part takes ``adapt_movement_scale`` and
        ``use_relative_jacobian`` as :func:`relative_keypoints` does. ``extra``: ``(B, K, E)``
        when built with ``extra_features=E``."""
        relative = relative_keypoints(source, driving, initial, adapt_movement_scale=adapt_movement_scale,
                                      use_relative_jacobian=use_relative_jacobian)
        source_points, initial_points = as_points(source), as_points(initial)
        relative_points = as_points(relative)
        source_centre = source_points[..., :2].mean(dim=1, keepdim=True)
        driving_centre = initial_points[..., :2].mean(dim=1, keepdim=True)
        features = [_centred(source_points, source_centre), _centred(initial_points, driving_centre),
                    _centred(as_points(driving), driving_centre), _centred(relative_points, source_centre)]
        if extra is not None:
            features.append(extra)
        # The network keeps its own arithmetic (fp32) whatever precision described the keypoints.
        inputs = torch.cat(features, dim=-1).flatten(1).to(self.correction.weight.dtype)
        correction = self.correction(self.body(inputs)).to(relative_points.dtype)
        return as_keypoints(relative_points + correction.view_as(relative_points))


def _centred(points: Tensor, centre: Tensor) -> Tensor:
    """Positions relative to ``centre`` ``(B, 1, 2)``, jacobians as they are."""
    return torch.cat([points[..., :2] - centre, points[..., 2:]], dim=-1)
