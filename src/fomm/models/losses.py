"""Training losses of the First Order Motion Model, with the original config keys and weights.

All images are ``(B, C, H, W)`` floats in [0, 1]; keypoints follow :class:`fomm.models.Keypoints`
(values ``(B, K, 2)`` (x, y) in [-1, 1], jacobians ``(B, K, 2, 2)``). Every function returns a
scalar tensor already multiplied by its ``train_params.loss_weights`` weight, as the original
``GeneratorFullModel`` / ``DiscriminatorFullModel`` did, so the total loss is a plain sum.

* :class:`PerceptualLoss` — reconstruction loss on an image pyramid (``train_params.scales``):
  with ``perceptual_backbone: vgg19`` the mean absolute difference of VGG19 relu1_1 ... relu5_1
  features (ImageNet normalisation) weighted by ``loss_weights.perceptual[i]`` and summed over
  scales; with ``perceptual_backbone: pixel`` the mean absolute difference of the pyramid images
  themselves, weighted by ``perceptual[0]`` (a single "layer": the image).
* :func:`equivariance_value_loss`, :func:`equivariance_jacobian_loss` — the equivariance
  constraints under a :class:`~fomm.geometry.RandomWarp`.
* :func:`generator_gan_loss`, :func:`discriminator_gan_loss`, :func:`feature_matching_loss` —
  least-squares GAN and discriminator feature matching.

The VGG19 network and its weights live beside the other networks, in :mod:`fomm.models.vgg`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..geometry import RandomWarp, coordinate_grid, inverse_2x2, pixel_scale, warp
from .fomm.keypoints import Keypoints
from .fomm.discriminator import DiscriminatorOutput
from .vgg import VGG19_LAYERS

__all__ = [
    "PerceptualLoss",
    "equivariance_value_loss",
    "equivariance_jacobian_loss",
    "generator_gan_loss",
    "discriminator_gan_loss",
    "feature_matching_loss",
    "carry_keypoints",
    "flow_consistency_loss",
]


class PerceptualLoss(nn.Module):
    """Multi-scale reconstruction loss (see module doc).

    ``forward(prediction, target, pyramid)`` where ``pyramid`` is an
    :class:`~fomm.models.ImagePyramid` at ``train_params.scales``; returns the weighted scalar.
    The target's features are detached, as in the original.
    """

    def __init__(self, weights: Sequence[float], backbone: str = "vgg19",
                 vgg: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.weights = [float(w) for w in weights]
        self.backbone = backbone
        if backbone == "vgg19":
            if len(self.weights) > VGG19_LAYERS:
                raise ConfigError(f"loss_weights.perceptual has {len(self.weights)} entries; VGG19 gives "
                                  f"{VGG19_LAYERS} layers")
            # With every weight 0 the loss is off and no VGG19 is needed (the reference config).
            if vgg is None and self.enabled:
                raise ValueError("perceptual_backbone vgg19 needs a VGG19 network (see fomm.models.vgg)")
            self.vgg = vgg
        elif backbone == "pixel":
            self.vgg = None
        else:
            raise ConfigError(f"unknown perceptual_backbone {backbone!r} (vgg19 or pixel)")

    @property
    def enabled(self) -> bool:
        return sum(self.weights) != 0

    def features(self, image: Tensor) -> list[Tensor]:
        return self.vgg(image) if self.vgg is not None else [image]

    def forward(self, pyramid_prediction: dict[str, Tensor], pyramid_target: dict[str, Tensor]) -> Tensor:
        """Both arguments are ``ImagePyramid`` outputs (``prediction_<scale>`` -> image)."""
        total = pyramid_prediction[next(iter(pyramid_prediction))].new_zeros(())
        for key, prediction in pyramid_prediction.items():
            predicted = self.features(prediction)
            target = self.features(pyramid_target[key])
            for weight, a, b in zip(self.weights, predicted, target):
                if weight == 0:
                    continue
                total = total + weight * (a - b.detach()).abs().mean()
        return total


def equivariance_value_loss(kp: Keypoints, transformed_kp: Keypoints, transform: RandomWarp) -> Tensor:
    """``mean |kp - T(kp of T-warped frame)|`` (unweighted).

    ``transformed_kp`` was detected on ``transform.transform_frame(frame)``: a point p of that
    frame shows the frame at ``T(p)``, so mapping its keypoints through ``T`` must give ``kp``.
    """
    return (kp.value - transform.warp_coordinates(transformed_kp.value)).abs().mean()


def equivariance_jacobian_loss(kp: Keypoints, transformed_kp: Keypoints, transform: RandomWarp) -> Tensor:
    """``mean |I - J^-1 (dT(p') J')|`` (unweighted), as the original.

    ``J`` is the jacobian at the frame's keypoints, ``J'`` at the warped frame's keypoints ``p'``;
    the chain rule ``dT(p') J'`` must equal ``J``.
    """
    if kp.jacobian is None or transformed_kp.jacobian is None:
        raise ValueError("equivariance_jacobian needs jacobians: set model_params.common_params.estimate_jacobian")
    jacobian_transformed = torch.matmul(transform.jacobian(transformed_kp.value), transformed_kp.jacobian)
    normed_driving = inverse_2x2(kp.jacobian)
    value = torch.matmul(normed_driving, jacobian_transformed)
    eye = torch.eye(2, dtype=value.dtype, device=value.device).view(1, 1, 2, 2)
    return (eye - value).abs().mean()


def generator_gan_loss(fake: DiscriminatorOutput) -> Tensor:
    """Least squares: ``sum over scales of mean (1 - D(fake))^2`` (unweighted)."""
    total = None
    for prediction_map in fake.prediction_maps.values():
        value = ((1 - prediction_map) ** 2).mean()
        total = value if total is None else total + value
    assert total is not None
    return total


def discriminator_gan_loss(real: DiscriminatorOutput, fake: DiscriminatorOutput) -> Tensor:
    """Least squares: ``sum over scales of mean((1 - D(real))^2 + D(fake)^2)`` (unweighted)."""
    total = None
    for scale, real_map in real.prediction_maps.items():
        value = ((1 - real_map) ** 2 + fake.prediction_maps[scale] ** 2).mean()
        total = value if total is None else total + value
    assert total is not None
    return total


def feature_matching_loss(real: DiscriminatorOutput, fake: DiscriminatorOutput, weights: Sequence[float]) -> Tensor:
    """``sum over scales and blocks i of weights[i] * mean |D_i(real) - D_i(fake)|`` (weighted).

    As the original, real features are not detached: gradients only reach the generator's
    parameters anyway, because this loss is minimised by the generator's optimiser.
    """
    total = None
    for scale, real_maps in real.feature_maps.items():
        for weight, a, b in zip(weights, real_maps, fake.feature_maps[scale]):
            if weight == 0:
                continue
            value = weight * (a - b).abs().mean()
            total = value if total is None else total + value
    if total is None:
        return next(iter(real.prediction_maps.values())).new_zeros(())
    return total

# --------------------------------------------------------------------------------------------
# Optical-flow consistency: keypoints must move the way the image moves.
#
# For two nearby frames ``a`` (source) and ``b`` (driving) of one video, a classical dense optical
# flow (OpenCV's DIS, no learned weights) gives the forward motion ``F``: the content at ``z`` in
# ``a`` is at ``z + F(z)`` in ``b``. A keypoint of ``a`` carried by the flow lands at
# ``p_a + sum_z H_a(z) F(z)`` (the flow averaged under its heatmap ``H_a``), and its local affine
# frame becomes ``(I + dF/dz) J_a``. The loss is the L1 distance of ``b``'s keypoints (and
# jacobians) to these carried ones, averaged over the nearby pairs of a batch.
#
# Flow is in normalised coordinates: x then y, in units of the [-1, 1] image frame, so
# ``F = pixels / pixel_scale`` (see :func:`fomm.geometry.pixel_scale`).


def flow_gradient(flow: Tensor) -> Tensor:
    """Spatial derivative of a ``(B, 2, H, W)`` flow in normalised units: ``(B, 2, 2, H, W)`` with
    ``[:, i, j]`` = d flow_i / d coordinate_j (central differences, one-sided at the border)."""
    _, _, height, width = flow.shape
    pixels_per_unit_x, pixels_per_unit_y = pixel_scale(width, height)
    d_dx = torch.gradient(flow, dim=3)[0] * pixels_per_unit_x
    d_dy = torch.gradient(flow, dim=2)[0] * pixels_per_unit_y
    return torch.stack([d_dx, d_dy], dim=2)


def _average_under_heatmap(field: Tensor, heatmap: Tensor) -> Tensor:
    """``field`` ``(B, C, H, W)`` sampled at the heatmap's pixel centres and averaged under each
    heatmap ``(B, K, h, w)``: ``(B, K, C)``."""
    batch, _, height, width = heatmap.shape
    grid = coordinate_grid(height, width, dtype=field.dtype, device=field.device)
    sampled = warp(field, grid.unsqueeze(0).expand(batch, -1, -1, -1), padding_mode="border")
    return torch.einsum("bkhw,bchw->bkc", heatmap, sampled)


@dataclass
class CarriedKeypoints:
    """Keypoints of frame ``a`` carried to frame ``b`` by the flow: ``value`` ``(B, K, 2)``,
    ``jacobian`` ``(B, K, 2, 2)`` or None."""

    value: Tensor
    jacobian: Optional[Tensor]


def carry_keypoints(kp_a: Keypoints, heatmap_a: Tensor, flow: Tensor) -> CarriedKeypoints:
    """Move ``kp_a`` by a ``(B, 2, H, W)`` forward flow averaged under its detector heatmaps
    ``heatmap_a`` ``(B, K, h, w)``."""
    displacement = _average_under_heatmap(flow, heatmap_a)
    value = kp_a.value + displacement
    jacobian = None
    if kp_a.jacobian is not None:
        batch, _, height, width = flow.shape
        gradient = flow_gradient(flow).reshape(batch, 4, height, width)
        local = _average_under_heatmap(gradient, heatmap_a).reshape(*kp_a.value.shape[:2], 2, 2)
        identity = torch.eye(2, dtype=flow.dtype, device=flow.device)
        jacobian = (identity + local) @ kp_a.jacobian
    return CarriedKeypoints(value, jacobian)


def flow_consistency_loss(kp_a: Keypoints, heatmap_a: Tensor, kp_b: Keypoints, flow: Tensor,
                          mask: Optional[Tensor] = None) -> Tensor:
    """L1 distance of ``kp_b`` to ``kp_a`` carried by ``flow`` (values, plus jacobians when present);
    ``heatmap_a`` ``(B, K, h, w)`` are the detector's heatmaps of frame ``a``.

    ``mask`` ``(B,)`` bool selects the nearby pairs whose flow is meaningful; the loss is 0 (with
    a gradient path) when none is selected. The flow is a fixed target: no gradient flows into it.
    """
    if mask is not None:
        if not bool(mask.any()):
            return kp_b.value.sum() * 0.0
        kp_a, heatmap_a, kp_b, flow = kp_a[mask], heatmap_a[mask], kp_b[mask], flow[mask]
    carried = carry_keypoints(kp_a, heatmap_a, flow.detach())
    loss = (kp_b.value - carried.value).abs().mean()
    if carried.jacobian is not None and kp_b.jacobian is not None:
        loss = loss + (kp_b.jacobian - carried.jacobian).abs().mean()
    return loss
