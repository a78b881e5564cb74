"""The MRAA training objectives on a small config: every term finite, gradients reach the networks
that train in each stage, weights come from the config, and the equivariance terms vanish on
regions that are exactly equivariant."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from fomm.geometry import RandomWarp
from fomm.models.mraa import MraaConfig, Regions
from fomm.models.mraa.model import build_mraa_model
from fomm.models.mraa.objective import AvdObjective, MraaObjective, equivariance_affine_loss, random_scale
from fomm.models.vgg import Vgg19Features

REFERENCE_CONFIG = Path(__file__).resolve().parent / "data" / "mraa-reference" / "config.yaml"


def config(**train_changes) -> MraaConfig:
    """The fixture's small config (64x64, 4 regions), two pyramid scales, with ``train_params``
    changes."""
    data = yaml.safe_load(REFERENCE_CONFIG.read_text())
    data["train_params"].update({"scales": [1, 0.5], **train_changes})
    return MraaConfig.from_dict(data)


def batch(seed: int, size: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(2 * size, 3, 8, 8, generator=generator)
    frames = torch.nn.functional.interpolate(coarse, size=(64, 64), mode="bilinear", align_corners=False)
    return frames[:size], frames[size:]


def gradient_norms(module: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


def test_every_term_is_finite_and_reaches_the_three_networks():
    torch.manual_seed(0)
    model = build_mraa_model(config())
    objective = MraaObjective(model, model.config.train_params, vgg=Vgg19Features())
    source, driving = batch(seed=1)
    losses, generated = objective(source, driving, epoch=0)
    assert set(losses) == {"perceptual", "equivariance_shift", "equivariance_affine"}
    assert all(torch.isfinite(value) and value.ndim == 0 for value in losses.values())
    assert generated["prediction"].shape == (2, 3, 64, 64) and generated["bg_params"].shape == (2, 3, 3)
    assert generated["transformed_frame"].shape == (2, 3, 64, 64)
    sum(losses.values()).backward()
    for name in ("region_predictor", "bg_predictor", "generator"):
        assert gradient_norms(getattr(model, name)) > 0, name
    assert gradient_norms(model.avd_network) == 0  # not part of this stage
    # What an optimiser over the objective's parameters would train: the three networks.
    trained = {id(p) for p in objective.parameters() if p.requires_grad}  # VGG19 is frozen
    assert trained == {id(p) for name in ("region_predictor", "bg_predictor", "generator")
                       for p in getattr(model, name).parameters()}


def test_equivariance_trains_only_the_region_predictor():
    torch.manual_seed(0)
    model = build_mraa_model(config(loss_weights={"perceptual": [0], "equivariance_shift": 1,
                                                  "equivariance_affine": 1}))
    objective = MraaObjective(model, model.config.train_params)
    losses, _ = objective(*batch(seed=2))
    assert set(losses) == {"equivariance_shift", "equivariance_affine"}
    sum(losses.values()).backward()
    assert gradient_norms(model.region_predictor) > 0
    assert gradient_norms(model.generator) == 0 and gradient_norms(model.bg_predictor) == 0


def test_loss_weights_come_from_the_config():
    source, driving = batch(seed=3)
    values = {}
    for factor in (1, 3):
        torch.manual_seed(0)
        model = build_mraa_model(config(perceptual_backbone="pixel", loss_weights={
            "perceptual": [2 * factor], "equivariance_shift": 5 * factor, "equivariance_affine": 7 * factor}))
        torch.manual_seed(1)  # the same random warp for both
        with torch.no_grad():
            values[factor] = MraaObjective(model, model.config.train_params)(source, driving)[0]
    for key in ("perceptual", "equivariance_shift", "equivariance_affine"):
        torch.testing.assert_close(values[3][key], 3 * values[1][key])
    # The pixel backbone: |prediction - driving| summed over the two pyramid scales, times 2.
    assert values[1]["perceptual"] > 0


@pytest.mark.parametrize("revert_axis_swap", [True, False])
def test_equivariance_terms_vanish_on_exactly_equivariant_regions(revert_axis_swap):
    torch.manual_seed(0)
    transform = RandomWarp(3, sigma_affine=0.2)  # affine only: its jacobian is theta's 2x2 part
    transformed = Regions(shift=torch.rand(3, 4, 2) - 0.5, affine=torch.randn(3, 4, 2, 2))
    # The driving frame's regions are the warped frame's, carried back through the warp.
    driving = Regions(shift=transform.warp_coordinates(transformed.shift),
                      affine=transform.theta[:, None, :, :2] @ transformed.affine)
    assert equivariance_affine_loss(driving, transformed, transform, revert_axis_swap) < 1e-5
    # An SVD axis flip of the warped frame's affine frames is no error only when reverted.
    flipped = Regions(shift=transformed.shift, affine=-transformed.affine)
    loss = equivariance_affine_loss(driving, flipped, transform, revert_axis_swap)
    assert (loss < 1e-5) if revert_axis_swap else (loss > 0.5)


def test_avd_stage_trains_only_the_avd_network_on_frozen_regions():
    torch.manual_seed(0)
    model = build_mraa_model(config())
    model.train()
    objective = AvdObjective(model, model.config.train_avd_params)
    running_mean = model.region_predictor.predictor.encoder.down_blocks[0].norm.running_mean.clone()
    losses, generated = objective(*batch(seed=4, size=4))
    assert set(losses) == {"rec_shift", "rec_affine"}
    assert all(torch.isfinite(value) for value in losses.values())
    sum(losses.values()).backward()
    assert gradient_norms(model.avd_network) > 0
    assert all(p.grad is None for p in model.region_predictor.parameters())
    assert {id(p) for p in objective.parameters()} == {id(p) for p in model.avd_network.parameters()}
    # The region predictor ran in eval mode (its statistics untouched) and is back in training mode.
    assert torch.equal(model.region_predictor.predictor.encoder.down_blocks[0].norm.running_mean, running_mean)
    assert model.region_predictor.training
    assert generated["shift"].shape == generated["driving_shift"].shape == (4, 4, 2)


def test_avd_loss_weights_are_the_lambdas():
    source, driving = batch(seed=5, size=4)
    values = {}
    for factor in (1, 2):
        torch.manual_seed(0)
        model = build_mraa_model(config())
        model.config.train_avd_params.lambda_shift = 3 * factor
        model.config.train_avd_params.lambda_affine = 0.5 * factor
        torch.manual_seed(1)
        with torch.no_grad():
            values[factor] = AvdObjective(model.eval(), model.config.train_avd_params)(source, driving)[0]
    for key in ("rec_shift", "rec_affine"):
        torch.testing.assert_close(values[2][key], 2 * values[1][key])


def test_random_scale_stretches_within_its_range():
    regions = Regions(shift=torch.rand(64, 4, 2) + 0.5, affine=torch.eye(2).expand(64, 4, 2, 2))
    torch.testing.assert_close(random_scale(regions, 0.0).shift, regions.shift)
    stretched = random_scale(regions, 0.25, generator=torch.Generator().manual_seed(0))
    factors = stretched.affine[:, 0].diagonal(dim1=-2, dim2=-1)  # diag(s_x, s_y) per element
    assert factors.min() >= 0.75 and factors.max() <= 1.25 and factors.std() > 0.05
    torch.testing.assert_close(stretched.shift, regions.shift * factors[:, None, :])
