"""TPSMM's training objectives: every term, where its gradients go, and the epoch schedules."""

from __future__ import annotations

import pytest
import torch

from fomm.models.tpsmm import TpsmmConfig, TpsmmModel
from fomm.models.tpsmm.objective import TpsmmObjective, avd_objective, dropout_probability, random_scale
from fomm.models.vgg import Vgg19Features

from .tpsmm_helpers import reference_config, smooth_images

TRAINED_FIRST = ("kp_detector", "dense_motion_network", "inpainting_network", "bg_predictor")


def config_with(weights: dict | None = None, **train: object) -> TpsmmConfig:
    """The fixture's small model (K = 3, 64x64, bg_start 10, dropout until epoch 35) with its
    pyramid cut to the scales a 64x64 frame can feed through VGG19, and overrides."""
    data = reference_config().to_dict()
    data["train_params"]["scales"] = [1, 0.5]
    data["train_params"].update(train)
    data["train_params"]["loss_weights"].update(weights or {})
    return TpsmmConfig.from_dict(data)


def only(term: str) -> dict:
    """Loss weights with every term but ``term`` off."""
    weights = {"perceptual": [0, 0, 0, 0, 0], "equivariance_value": 0, "warp_loss": 0, "bg": 0}
    weights[term] = [10, 10, 10, 10, 10] if term == "perceptual" else 10
    return weights


@pytest.fixture(scope="module")
def vgg() -> Vgg19Features:
    torch.manual_seed(0)
    return Vgg19Features()  # random weights: the loss's arithmetic, not ImageNet features


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return smooth_images(2, seed=3), smooth_images(2, seed=4)


def fresh_model(config: TpsmmConfig) -> TpsmmModel:
    """A model in training mode whose background predictor is slightly off the identity: a fresh
    one outputs exactly the identity, where the background loss and its gradient are exactly 0."""
    torch.manual_seed(0)
    model = TpsmmModel(config).train()
    torch.nn.init.normal_(model.bg_predictor.bg_encoder.fc.weight, std=1e-2)
    return model


def trained_networks(config: TpsmmConfig, vgg, batch, epoch: int) -> tuple[dict, set[str]]:
    """The losses at ``epoch`` and the networks their sum leaves a non-zero gradient on."""
    model = fresh_model(config)
    losses, _ = TpsmmObjective(model, config.train_params, vgg)(*batch, epoch=epoch)
    sum(losses.values()).backward()
    reached = {name for name in model.built_networks()
               if any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(model, name).parameters())}
    return losses, reached


def test_every_term_is_finite_and_positive(vgg, batch):
    config = config_with()
    model = fresh_model(config)
    losses, generated = TpsmmObjective(model, config.train_params, vgg)(*batch, epoch=12)
    assert set(losses) == {"perceptual", "equivariance_value", "warp_loss", "bg"}
    for name, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value) and value > 0, name
    assert generated["prediction"].shape == (2, 3, 64, 64) and generated["kp_driving"].shape == (2, 15, 2)
    assert generated["transformed_frame"].shape == (2, 3, 64, 64) and generated["occlusion_map"].shape == (2, 1, 64, 64)


@pytest.mark.parametrize(("term", "expected"), [
    ("perceptual", set(TRAINED_FIRST)),
    # The warp loss compares detached features: it trains the motion, never the inpainting network.
    ("warp_loss", {"kp_detector", "dense_motion_network", "bg_predictor"}),
    ("equivariance_value", {"kp_detector"}),
    ("bg", {"bg_predictor"}),
])
def test_gradients_reach_the_networks_each_term_trains(vgg, batch, term, expected):
    losses, reached = trained_networks(config_with(only(term)), vgg, batch, epoch=40)
    assert set(losses) == {term}
    assert reached == expected


def test_dropout_schedule_follows_the_config():
    vox = TpsmmConfig.load("tpsmm-vox-256").train_params  # startp 0.1, maxp 0.3, inc 10, until 35
    assert [dropout_probability(vox, epoch) for epoch in (0, 5, 6, 10, 34, 35, 99)] == pytest.approx(
        [0.1, 0.25, 0.28, 0.3, 0.3, None, None])
    taichi = TpsmmConfig.load("tpsmm-taichi-256").train_params  # startp 0, maxp 0.7
    assert dropout_probability(taichi, 5) == pytest.approx(0.35) and dropout_probability(taichi, 10) == 0.7


def test_dropout_is_applied_before_dropout_epoch(vgg, batch):
    # With every TPS transform dropped only the background (the identity before bg_start) is left:
    # the warped source is the source itself.
    config = config_with(only("perceptual"), dropout_startp=0.999, dropout_maxp=0.999, bg_start=50)
    torch.manual_seed(0)
    objective = TpsmmObjective(TpsmmModel(config).train(), config.train_params, vgg)
    torch.manual_seed(1)
    _, dropped = objective(*batch, epoch=0)
    assert torch.allclose(dropped["deformed"], batch[0], atol=1e-5)
    _, after = objective(*batch, epoch=config.train_params.dropout_epoch)
    assert not torch.allclose(after["deformed"], batch[0], atol=1e-2)


def test_background_takes_part_from_bg_start(vgg, batch):
    config = config_with()  # bg_start 10
    before, reached_before = trained_networks(config, vgg, batch, epoch=9)
    assert "bg" not in before and "bg_predictor" not in reached_before
    after, reached_after = trained_networks(config, vgg, batch, epoch=10)
    assert "bg" in after and "bg_predictor" in reached_after


def test_avd_objective_trains_only_the_avd_network(batch):
    config = reference_config()
    torch.manual_seed(0)
    model = TpsmmModel(config).train()
    losses = avd_objective(model, *batch, config.train_avd_params, generator=torch.Generator().manual_seed(0))
    assert set(losses) == {"rec_kp"} and torch.isfinite(losses["rec_kp"]) and losses["rec_kp"] > 0
    losses["rec_kp"].backward()
    for name in model.networks:
        has_grad = any(p.grad is not None for p in getattr(model, name).parameters())
        assert has_grad == (name == "avd_network"), name


def test_random_scale_scales_each_axis_of_each_element():
    points = torch.rand(64, 15, 2) * 2 - 1
    assert torch.equal(random_scale(points, 0.0), points)
    scaled = random_scale(points, 0.25, torch.Generator().manual_seed(0))
    factors = scaled / points
    # One factor per element and axis, shared by its points, in [0.75, 1.25).
    assert torch.allclose(factors, factors[:, :1].expand_as(factors), atol=1e-4)
    assert factors.min() >= 0.75 - 1e-5 and factors.max() < 1.25 + 1e-5
    assert (factors[:, 0, 0] - factors[:, 0, 1]).abs().max() > 0.01
