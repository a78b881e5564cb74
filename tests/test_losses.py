"""Losses: VGG19 weight loading, perceptual pyramid, equivariance, GAN and feature matching."""

from __future__ import annotations

import pytest
import torch

from fomm.geometry import RandomWarp, coordinate_grid, inverse_2x2
from fomm.models.losses import (
    PerceptualLoss,
    discriminator_gan_loss,
    equivariance_jacobian_loss,
    equivariance_value_loss,
    feature_matching_loss,
    generator_gan_loss,
)
from fomm.models import ImagePyramid, Keypoints
from fomm.models.fomm.discriminator import DiscriminatorOutput
from fomm.models import vgg
from fomm.models.vgg import VGG19_FILENAME, Vgg19Features, VggWeightsError, load_vgg19_weights

# torchvision's vgg19: the conv layers sit at these indices of ``features``.
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


def torchvision_layout_state_dict() -> dict[str, torch.Tensor]:
    """Random weights with exactly the keys and shapes of torchvision's ``vgg19`` file."""
    generator = torch.Generator().manual_seed(0)
    state, in_channels = {}, 3
    channels = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512)
    for index, out_channels in zip(TORCHVISION_CONV_INDICES, channels):
        state[f"features.{index}.weight"] = torch.randn(out_channels, in_channels, 3, 3, generator=generator) * 0.01
        state[f"features.{index}.bias"] = torch.randn(out_channels, generator=generator) * 0.01
        in_channels = out_channels
    # The classifier of the real file: ignored by the loader. Small stand-ins keep the test fast.
    state["classifier.0.weight"] = torch.zeros(8, 8)
    state["classifier.0.bias"] = torch.zeros(8)
    return state


def test_vgg_parameter_names_are_torchvisions():
    names = set(Vgg19Features().state_dict())
    expected = {f"features.{i}.{kind}" for i in TORCHVISION_CONV_INDICES for kind in ("weight", "bias")}
    assert names == expected


def test_vgg_weights_load_from_configured_file(tmp_path):
    state = torchvision_layout_state_dict()
    path = tmp_path / "my-vgg.pth"
    torch.save(state, path)
    network = load_vgg19_weights(path, allow_download=False)
    for key, value in network.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert not any(p.requires_grad for p in network.parameters())
    features = network(torch.rand(1, 3, 32, 32))
    assert [f.shape[1] for f in features] == [64, 128, 256, 512, 512]
    assert [f.shape[-1] for f in features] == [32, 16, 8, 4, 2]


def _cache_made_vgg_file(tmp_path, monkeypatch) -> tuple[dict, str]:
    """A torchvision-layout file made here, in a fresh torch hub cache; returns it and its SHA-256."""
    import hashlib

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    state = torchvision_layout_state_dict()
    torch.save(state, cache / VGG19_FILENAME)
    return state, hashlib.sha256((cache / VGG19_FILENAME).read_bytes()).hexdigest()


def test_vgg_weights_found_in_torch_hub_cache(tmp_path, monkeypatch):
    state, digest = _cache_made_vgg_file(tmp_path, monkeypatch)
    # The made file stands in for torchvision's: the hash it is checked against is its own.
    monkeypatch.setattr(vgg, "VGG19_SHA256_PREFIX", digest[:8])
    network = load_vgg19_weights(None, allow_download=False)
    assert torch.equal(network.features[34].bias, state["features.34.bias"])


def test_a_cached_vgg_file_with_the_wrong_hash_is_refused(tmp_path, monkeypatch):
    _, digest = _cache_made_vgg_file(tmp_path, monkeypatch)
    assert not digest.startswith(vgg.VGG19_SHA256_PREFIX)
    with pytest.raises(VggWeightsError, match="SHA-256") as error:
        load_vgg19_weights(None, allow_download=False)
    assert "delete it and download it again" in str(error.value)


def test_a_garbage_vgg_file_is_a_clear_error(tmp_path):
    path = tmp_path / "vgg19.pth"
    path.write_bytes(b"not a weights file at all")
    with pytest.raises(VggWeightsError, match="not a readable weights file"):
        load_vgg19_weights(path, allow_download=False)


def test_vgg_weights_missing_offline_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(VggWeightsError) as error:
        load_vgg19_weights(None, allow_download=False)
    message = str(error.value)
    assert str(tmp_path / "hub" / "checkpoints" / VGG19_FILENAME) in message
    assert "train_params.vgg19_weights" in message and "perceptual_backbone: pixel" in message
    with pytest.raises(VggWeightsError, match="does not exist"):
        load_vgg19_weights(tmp_path / "nowhere.pth", allow_download=False)


def test_vgg_weights_of_wrong_layout_are_refused(tmp_path):
    state = torchvision_layout_state_dict()
    del state["features.34.weight"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(VggWeightsError, match="features.34.weight"):
        load_vgg19_weights(tmp_path / "bad.pth", allow_download=False)


def test_pixel_perceptual_loss_is_weighted_pyramid_l1():
    torch.manual_seed(0)
    prediction, target = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    pyramid = ImagePyramid([1, 0.5], 3)
    loss = PerceptualLoss([10], backbone="pixel")(pyramid(prediction), pyramid(target))
    small = pyramid(prediction)["prediction_0.5"], pyramid(target)["prediction_0.5"]
    expected = 10 * ((prediction - target).abs().mean() + (small[0] - small[1]).abs().mean())
    assert torch.allclose(loss, expected)


def test_vgg_perceptual_loss_sums_weighted_layers_and_reaches_only_the_prediction():
    torch.manual_seed(0)
    vgg = Vgg19Features()
    for module in vgg.features:  # small random weights: a stand-in for the ImageNet file
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.normal_(module.weight, std=0.05)
    prediction = torch.rand(1, 3, 32, 32, requires_grad=True)
    target = torch.rand(1, 3, 32, 32)
    pyramid = ImagePyramid([1], 3)
    weights = [1.0, 0.0, 2.0, 0.0, 0.0]
    loss = PerceptualLoss(weights, "vgg19", vgg)(pyramid(prediction), pyramid(target))
    a, b = vgg(prediction), vgg(target)
    expected = (a[0] - b[0]).abs().mean() + 2 * (a[2] - b[2]).abs().mean()
    assert torch.allclose(loss, expected, rtol=1e-5)
    loss.backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def _invert(transform: RandomWarp, target: torch.Tensor, iterations: int = 30) -> torch.Tensor:
    """Solve T(p) = target by Newton's method (T is a small random affine + TPS warp)."""
    point = target.clone()
    for _ in range(iterations):
        residual = transform.warp_coordinates(point) - target
        jacobian = transform.jacobian(point).detach()
        point = (point - torch.einsum("bkij,bkj->bki", inverse_2x2(jacobian), residual)).detach()
    return point


def test_equivariance_losses_vanish_for_an_exactly_equivariant_detector():
    """Keypoints transported analytically through the warp (p' = T^-1(p), J' = dT(p')^-1 J)
    are what an exactly equivariant detector outputs on the warped frame: both losses ~ 0."""
    torch.manual_seed(0)
    transform = RandomWarp(3, sigma_affine=0.05, sigma_tps=0.005, points_tps=5)
    value = torch.rand(3, 5, 2) * 1.4 - 0.7
    jacobian = torch.eye(2) + 0.2 * torch.randn(3, 5, 2, 2)
    kp = Keypoints(value, jacobian)
    transported_value = _invert(transform, value)
    transported_jacobian = torch.matmul(inverse_2x2(transform.jacobian(transported_value).detach()), jacobian)
    transported = Keypoints(transported_value, transported_jacobian)
    assert equivariance_value_loss(kp, transported, transform) < 1e-5
    assert equivariance_jacobian_loss(kp, transported, transform) < 1e-4

    # A detector that ignores the warp (same keypoints on both frames) is penalised.
    assert equivariance_value_loss(kp, kp, transform) > 1e-2
    assert equivariance_jacobian_loss(kp, kp, transform) > 1e-2


class CentroidDetector(torch.nn.Module):
    """One keypoint: the intensity centroid of the image. Under an affine warp of a blob that
    stays inside the frame, the centroid moves with the warp: equivariant by construction."""

    def forward(self, image: torch.Tensor) -> Keypoints:
        weights = image.mean(dim=1)  # (B, H, W)
        weights = weights / weights.sum(dim=(1, 2), keepdim=True)
        grid = coordinate_grid(image.shape[2], image.shape[3])
        return Keypoints(torch.einsum("bhw,hwc->bc", weights, grid)[:, None, :])


def test_equivariance_value_loss_on_real_warped_frames():
    torch.manual_seed(1)
    grid = coordinate_grid(64, 64)
    centres = torch.tensor([[0.1, -0.05], [-0.1, 0.08]])
    frames = torch.exp(-((grid[None] - centres[:, None, None]) ** 2).sum(-1) / 0.02)[:, None].expand(2, 3, 64, 64)
    transform = RandomWarp(2, sigma_affine=0.05)
    warped = transform.transform_frame(frames)
    detector = CentroidDetector()
    equivariant = equivariance_value_loss(detector(frames), detector(warped), transform)
    assert equivariant < 2e-3

    class FixedPoint(torch.nn.Module):  # not equivariant: always the centre of the frame's blob 0
        def forward(self, image):
            return Keypoints(centres[:1, None].expand(image.shape[0], 1, 2))

    assert equivariance_value_loss(FixedPoint()(frames), FixedPoint()(warped), transform) > 10 * equivariant


def test_equivariance_jacobian_loss_needs_jacobians():
    transform = RandomWarp(1, sigma_affine=0.05)
    kp = Keypoints(torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="estimate_jacobian"):
        equivariance_jacobian_loss(kp, kp, transform)


def _disc_output(prediction: float, features: list[float]) -> DiscriminatorOutput:
    return DiscriminatorOutput(feature_maps={"1": [torch.full((1, 2, 4, 4), f) for f in features]},
                               prediction_maps={"1": torch.full((1, 1, 3, 3), prediction)})


def test_least_squares_gan_losses():
    real, fake = _disc_output(1.0, [0.0, 0.0]), _disc_output(0.0, [1.0, 2.0])
    assert generator_gan_loss(real) == 0  # D fooled: (1 - 1)^2
    assert generator_gan_loss(fake) == 1
    assert discriminator_gan_loss(real, fake) == 0  # a perfect discriminator
    assert discriminator_gan_loss(fake, real) == 2
    assert feature_matching_loss(real, fake, [10, 0]) == 10  # |0 - 1| * 10; second block weight 0
    assert feature_matching_loss(real, fake, [1, 1]) == 3
