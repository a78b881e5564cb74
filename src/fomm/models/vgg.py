"""The VGG19 feature network of the perceptual loss, and where its ImageNet weights come from.

Weights (torchvision's ImageNet file ``vgg19-dcbb9e9d.pth``) are looked up in this order:
``train_params.vgg19_weights``, then ``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth`` (torch's
hub cache), then downloaded with ``torch.hub.load_state_dict_from_url`` (online only, and never
with ``FOMM_OFFLINE=1``). A file is always read with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from ..errors import UserError

__all__ = ["VGG19_FILENAME", "VGG19_URL", "VGG19_LAYERS", "VggWeightsError", "Vgg19Features",
           "cached_vgg19_path", "find_vgg19_weights", "load_vgg19_weights", "verify_vgg19_hash"]

VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILENAME}"
VGG19_SHA256_PREFIX = "dcbb9e9d"  # torchvision publishes the hash prefix in the file name

# torchvision's vgg19 "features": conv channel counts, "M" = 2x2 max pool. Every conv is followed
# by a ReLU, so the indices of ``features.N`` match torchvision's exactly.
_VGG19_LAYOUT: tuple = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                        512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
# End indices (exclusive) of the original Vgg19 slices: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
_VGG19_SLICE_ENDS = (2, 7, 12, 21, 30)
VGG19_LAYERS = len(_VGG19_SLICE_ENDS)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VggWeightsError(UserError):
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


def cached_vgg19_path() -> Path:
    """Where torch's hub cache keeps the file: ``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILENAME


def find_vgg19_weights(configured: Optional[str | Path] = None) -> Optional[Path]:
    """Path of the VGG19 weights file: ``configured`` (must exist), else torch's hub cache, else None."""
    if configured is not None:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise VggWeightsError(f"train_params.vgg19_weights points to {path}, which does not exist")
        return path
    cached = cached_vgg19_path()
    return cached if cached.is_file() else None


def verify_vgg19_hash(path: Path) -> None:
    """The cached (or downloaded) file must be torchvision's: its SHA-256 starts with the hash in
    its published name (``dcbb9e9d``), as torch's own hub checks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(VGG19_SHA256_PREFIX):
        raise VggWeightsError(f"{path}: not torchvision's {VGG19_FILENAME} (SHA-256 {digest.hexdigest()[:16]}..., "
                              f"expected {VGG19_SHA256_PREFIX}...): delete it and download it again from {VGG19_URL}")


def load_vgg19_weights(configured: Optional[str | Path] = None, allow_download: Optional[bool] = None) -> Vgg19Features:
    """A :class:`Vgg19Features` with torchvision's ImageNet weights.

    ``allow_download`` None means "unless ``FOMM_OFFLINE=1`` is set". A downloaded or cached file
    is checked against its published hash; every file is read with ``weights_only=True``. Raises
    :class:`VggWeightsError` saying where to put the file when it is not found and cannot be
    downloaded.
    """
    if allow_download is None:
        allow_download = os.environ.get("FOMM_OFFLINE", "0") in ("", "0")
    path = find_vgg19_weights(configured)
    if path is None and allow_download:
        path = cached_vgg19_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Checks the hash while downloading to a temporary file, renamed only when it matches.
            torch.hub.download_url_to_file(VGG19_URL, str(path), hash_prefix=VGG19_SHA256_PREFIX, progress=True)
        except Exception as error:  # URLError, HTTPError, timeouts, SSL errors, a hash mismatch...
            raise VggWeightsError(_missing_weights_message(f"download failed: {error}")) from None
    elif path is None:
        raise VggWeightsError(_missing_weights_message("downloads are disabled"))
    if configured is None:
        verify_vgg19_hash(path)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise VggWeightsError(f"{path}: not a readable weights file ({type(error).__name__}: "
                              f"{' '.join(str(error).split())[:200]})") from None
    if not isinstance(state_dict, dict):
        raise VggWeightsError(f"{path}: not a state dict of torchvision's vgg19")
    network = Vgg19Features()
    features = {key: value for key, value in state_dict.items() if key.startswith("features.")}
    if not features:
        raise VggWeightsError(f"{path}: no 'features.*' keys; not torchvision's vgg19 layout")
    # Strict on the feature part: a wrong file (vgg16, vgg19_bn) fails here with the names.
    incompatible = network.load_state_dict(features, strict=False)
    if incompatible.missing_keys or incompatible.unexpected_keys:
        raise VggWeightsError(f"{path}: not torchvision's vgg19 features "
                              f"(missing {incompatible.missing_keys[:4]}, unexpected {incompatible.unexpected_keys[:4]})")
    return network


def _missing_weights_message(reason: str) -> str:
    cached = cached_vgg19_path()
    return (f"VGG19 ImageNet weights not found ({reason}). The perceptual loss needs torchvision's "
            f"'{VGG19_FILENAME}' ({VGG19_URL}). Either put that file at {cached} "
            f"(torch's hub cache; set TORCH_HOME to move it), or set train_params.vgg19_weights to its "
            f"path in the config, or use train_params.perceptual_backbone: pixel for a network-free "
            f"L1 pyramid loss.")
