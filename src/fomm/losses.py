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

VGG19 weights (torchvision's ImageNet file ``vgg19-dcbb9e9d.pth``) are looked up in this order:
``train_params.vgg19_weights``, then ``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth`` (torch's
hub cache), then downloaded with ``torch.hub.load_state_dict_from_url`` (online only).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .geometry import RandomWarp, inverse_2x2
from .models.discriminator import DiscriminatorOutput
from .models.keypoints import Keypoints

__all__ = [
    "VGG19_FILENAME",
    "VGG19_URL",
    "VggWeightsError",
    "Vgg19Features",
    "find_vgg19_weights",
    "load_vgg19_weights",
    "PerceptualLoss",
    "equivariance_value_loss",
    "equivariance_jacobian_loss",
    "generator_gan_loss",
    "discriminator_gan_loss",
    "feature_matching_loss",
]

VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILENAME}"

# torchvision's vgg19 "features": conv channel counts, "M" = 2x2 max pool. Every conv is followed
# by a ReLU, so the indices of ``features.N`` match torchvision's exactly.
_VGG19_LAYOUT: tuple = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                        512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
# End indices (exclusive) of the original Vgg19 slices: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
_VGG19_SLICE_ENDS = (2, 7, 12, 21, 30)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VggWeightsError(FileNotFoundError):
    """The VGG19 ImageNet weights are not available (and could not be downloaded)."""


class Vgg19Features(nn.Module):
    """VGG19 convolutional trunk returning relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.

    Parameter names are torchvision's (``features.N.weight`` / ``features.N.bias``), so the
    feature part of ``vgg19-dcbb9e9d.pth`` loads with strict key matching. Input ``(B, 3, H, W)``
    in [0, 1]; it is normalised with the ImageNet mean/std inside. The parameters are frozen
    (``requires_grad=False``) and the module stays in eval mode: gradients flow to the input only.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for item in _VGG19_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                in_channels = item
        self.features = nn.Sequential(*layers)
        # Not persistent: not part of torchvision's file, and always the same constants.
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "Vgg19Features":
        # A frozen feature extractor: keep eval mode whatever the trainer asks of its parents.
        return super().train(False)

    def forward(self, image: Tensor) -> list[Tensor]:
        out = (image - self.mean.to(image.dtype)) / self.std.to(image.dtype)
        outputs = []
        start = 0
        for end in _VGG19_SLICE_ENDS:
            for index in range(start, end):
                out = self.features[index](out)
            outputs.append(out)
            start = end
        return outputs


def find_vgg19_weights(configured: Optional[str | Path] = None) -> Optional[Path]:
    """Path of the VGG19 weights file: ``configured`` (must exist), else torch's hub cache
    (``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth``), else None."""
    if configured is not None:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise VggWeightsError(f"train_params.vgg19_weights points to {path}, which does not exist")
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILENAME
    return cached if cached.is_file() else None


def load_vgg19_weights(configured: Optional[str | Path] = None, allow_download: Optional[bool] = None) -> Vgg19Features:
    """A :class:`Vgg19Features` with torchvision's ImageNet weights.

    ``allow_download`` None means "unless ``FOMM_OFFLINE=1`` is set". Raises
    :class:`VggWeightsError` saying where to put the file when it is not found and cannot be
    downloaded.
    """
    if allow_download is None:
        allow_download = os.environ.get("FOMM_OFFLINE", "0") in ("", "0")
    path = find_vgg19_weights(configured)
    if path is not None:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    elif allow_download:
        try:
            state_dict = torch.hub.load_state_dict_from_url(VGG19_URL, map_location="cpu", progress=True)
        except Exception as error:  # URLError, HTTPError, timeouts, SSL errors...
            raise VggWeightsError(_missing_weights_message(f"download failed: {error}")) from None
    else:
        raise VggWeightsError(_missing_weights_message("downloads are disabled"))
    network = Vgg19Features()
    features = {key: value for key, value in state_dict.items() if key.startswith("features.")}
    if not features:
        raise VggWeightsError(f"{path or VGG19_URL}: no 'features.*' keys; not torchvision's vgg19 layout")
    # Strict on the feature part: a wrong file (vgg16, vgg19_bn) fails here with the names.
    incompatible = network.load_state_dict(features, strict=False)
    if incompatible.missing_keys or incompatible.unexpected_keys:
        raise VggWeightsError(f"{path or VGG19_URL}: not torchvision's vgg19 features "
                              f"(missing {incompatible.missing_keys[:4]}, unexpected {incompatible.unexpected_keys[:4]})")
    return network


def _missing_weights_message(reason: str) -> str:
    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILENAME
    return (f"VGG19 ImageNet weights not found ({reason}). The perceptual loss needs torchvision's "
            f"'{VGG19_FILENAME}' ({VGG19_URL}). Either put that file at {cached} "
            f"(torch's hub cache; set TORCH_HOME to move it), or set train_params.vgg19_weights to its "
            f"path in the config, or use train_params.perceptual_backbone: pixel for a network-free "
            f"L1 pyramid loss.")


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
            if vgg is None:
                raise ValueError("perceptual_backbone vgg19 needs a VGG19 network (see load_vgg19_weights)")
            if len(self.weights) > len(_VGG19_SLICE_ENDS):
                raise ValueError(f"loss_weights.perceptual has {len(self.weights)} entries; VGG19 gives "
                                 f"{len(_VGG19_SLICE_ENDS)} layers")
            self.vgg = vgg
        elif backbone == "pixel":
            self.vgg = None
        else:
            raise ValueError(f"unknown perceptual_backbone {backbone!r} (vgg19 or pixel)")

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
