"""TPSMM's parts and its family interface: config schema, the TPS transform, the dense motion,
TpsmmModel's describe/transfer/render/reconstruct, and the original checkpoint layout."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import yaml

from fomm.errors import CheckpointError, ConfigError
from fomm.geometry import coordinate_grid, warp
from fomm.models.family import MotionSettings
import fomm
from fomm.models.tpsmm import TpsKeypoints, TpsmmConfig, TpsmmModel, relative_motion
from fomm.models.tpsmm.dense_motion import background_grid, dropout_softmax
from fomm.models.tpsmm.tps import RandomTps, fit_tps, tps_kernel

from .conftest import CONFIGS
from .reference_fixtures import load_original
from .tpsmm_helpers import (
    reference_checkpoint,
    reference_config,
    reference_model,
    smooth_images,
    tiny_config,
    tpsmm_fixture,
)


@pytest.fixture(scope="module")
def model() -> TpsmmModel:
    return reference_model()


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    return smooth_images(1, seed=1), smooth_images(3, seed=2)


def original_data() -> dict:
    return yaml.safe_load(tpsmm_fixture("config.yaml").read_text())


# --------------------------------------------------------------------------------------------
# config


def test_original_layout_with_null_frame_shape_loads():
    data = original_data()
    data["dataset_params"]["frame_shape"] = None  # as every published TPSMM config has it
    config = TpsmmConfig.from_dict(data)
    assert config.dataset_params.frame_shape == (256, 256, 3)
    assert config.model_params.common_params.num_tps == 3
    assert config.train_params.dropout_inc_epoch == 10 and config.train_avd_params.random_scale == 0.25


def test_unknown_key_is_an_error_naming_it():
    data = original_data()
    data["model_params"]["common_params"]["num_tsp"] = 3
    with pytest.raises(ConfigError, match=r"unknown key 'model_params\.common_params\.num_tsp'"):
        TpsmmConfig.from_dict(data, source="typo.yaml")


def test_multi_mask_needs_four_feature_levels():
    data = original_data()
    data["model_params"]["generator_params"]["num_down_blocks"] = 2
    with pytest.raises(ConfigError, match="num_down_blocks"):
        TpsmmConfig.from_dict(data)
    data["model_params"]["common_params"]["multi_mask"] = False  # one mask, resized: any depth
    assert TpsmmConfig.from_dict(data).model_params.generator_params.num_down_blocks == 2


def test_equivariance_loss_needs_a_random_warp():
    data = original_data()
    del data["train_params"]["transform_params"]
    with pytest.raises(ConfigError, match="transform_params"):
        TpsmmConfig.from_dict(data)


def test_packaged_configs_by_name():
    ted = TpsmmConfig.load("tpsmm-ted-384")
    assert ted.dataset_params.frame_shape == (384, 384, 3) and ted.train_params.batch_size == 12
    assert TpsmmConfig.load("tpsmm-taichi-256").train_params.dropout_maxp == 0.7
    mgif = TpsmmConfig.load(CONFIGS / "tpsmm-mgif-256.yaml")
    assert not mgif.model_params.common_params.bg and mgif.train_avd_params.lambda_affine == 1
    assert TpsmmConfig.from_dict(mgif.to_dict()) == mgif


# --------------------------------------------------------------------------------------------
# the thin-plate spline


def test_fit_solves_the_regularised_system():
    torch.manual_seed(0)
    driving = torch.rand(2, 3, 5, 2) * 1.6 - 0.8
    source = driving + 0.1 * torch.randn_like(driving)
    tps = fit_tps(driving, source)
    assert tps.affine.shape == (2, 3, 2, 3) and tps.weights.shape == (2, 3, 5, 2)
    # First block row of (L + 0.01 I) [w; a] = [source; 0] at the control points: T(c_i) + 0.01 w_i = s_i.
    at_controls = torch.stack([tps.warp_points(driving[:, k])[:, k] for k in range(3)], dim=1)
    assert torch.allclose(at_controls + 0.01 * tps.weights, source, atol=1e-5)
    # Second block row: P^T w + 0.01 a = 0 (sum of weights, and their moments, balance the affine part).
    homogeneous = torch.cat([driving, torch.ones(2, 3, 5, 1)], dim=-1)
    balance = homogeneous.transpose(-1, -2) @ tps.weights + 0.01 * tps.affine.transpose(-1, -2)
    assert balance.abs().max() < 1e-5


def test_kernel_is_r2_log_r2_and_zero_at_the_control_point():
    squared = torch.tensor([0.0, 0.25, 1.0, 4.0])
    assert torch.allclose(tps_kernel(squared), torch.tensor([0.0, 0.25 * math.log(0.25), 0.0, 4 * math.log(4.0)]))


def test_grid_warps_every_pixel_centre():
    torch.manual_seed(1)
    driving = torch.rand(1, 2, 5, 2) - 0.5
    tps = fit_tps(driving, driving.flip(-1))
    grid = tps.grid(4, 6)
    assert grid.shape == (1, 2, 4, 6, 2)
    pixels = coordinate_grid(4, 6)
    assert torch.equal(grid[:, :, 2, 5], tps.warp_points(pixels[2, 5].view(1, 1, 2))[:, :, 0])


def test_random_warp_without_noise_is_the_identity():
    frame = smooth_images(2, size=16)
    warp = RandomTps(2, sigma_affine=0.0, sigma_tps=0.0, points_tps=5)
    assert torch.allclose(warp.transform_frame(frame), frame, atol=1e-6)
    points = torch.rand(2, 7, 2) * 2 - 1
    assert torch.allclose(warp.warp_coordinates(points), points, atol=1e-7)


def test_random_warp_without_tps_noise_is_its_affine_part():
    generator = torch.Generator().manual_seed(0)
    warp = RandomTps(3, sigma_affine=0.1, sigma_tps=0.0, points_tps=5, generator=generator)
    points = torch.rand(3, 4, 2) * 2 - 1
    affine = torch.einsum("bij,bnj->bni", warp.theta, torch.cat([points, torch.ones(3, 4, 1)], dim=-1))
    assert torch.allclose(warp.warp_coordinates(points), affine, atol=1e-6)


# --------------------------------------------------------------------------------------------
# dense motion


def test_dropout_softmax_keeps_the_background_and_renormalises():
    logits = torch.randn(4, 6, 5, 5)
    assert torch.allclose(dropout_softmax(logits, 0.0), torch.softmax(logits, dim=1), atol=1e-5)
    torch.manual_seed(0)
    dropped = dropout_softmax(logits, 0.5)
    kept = dropped.amax(dim=(2, 3)) > 0
    assert kept[:, 0].all() and not kept.all()  # the background always, some transforms not
    assert torch.allclose(dropped.sum(dim=1), torch.ones(4, 5, 5), atol=1e-5)
    everything = dropout_softmax(logits, 1.0)  # only the background left
    assert not everything[:, 1:].any() and (everything[:, 0] > 0).all()


def test_background_grid_is_the_identity_or_the_affine_map():
    like = torch.zeros(1)
    identity = coordinate_grid(5, 7).view(1, 1, 5, 7, 2)
    assert torch.equal(background_grid(2, 5, 7, None, like), identity.expand(2, 1, 5, 7, 2))
    assert torch.equal(background_grid(1, 5, 7, torch.eye(3)[None], like), identity)
    shift = torch.tensor([[[1.0, 0.0, 0.25], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]]])
    expected = identity + torch.tensor([0.25, -0.5])
    assert torch.allclose(background_grid(1, 5, 7, shift, like), expected)


def test_contributions_sum_to_one_and_masks_have_four_resolutions(model, images):
    source, driving = images
    with torch.no_grad():
        rendered = model.render(model.encode_source(source), model.describe(source), model.describe(driving))
    assert torch.allclose(rendered.contribution_maps.sum(dim=1), torch.ones(3, 16, 16), atol=1e-5)
    assert [mask.shape[-1] for mask in rendered.occlusion_maps] == [8, 16, 32, 64]
    assert all(0 <= mask.min() and mask.max() <= 1 for mask in rendered.occlusion_maps)
    assert rendered.occlusion_map is rendered.occlusion_maps[-1]
    assert [feature.shape[1:] for feature in rendered.warped_encoder_maps] == [
        (64, 8, 8), (64, 16, 16), (32, 32, 32), (16, 64, 64)]


def test_single_mask_is_resized_to_every_level(images):
    torch.manual_seed(0)
    single = TpsmmModel(tiny_config(multi_mask=False)).eval()
    source, driving = images
    with torch.no_grad():
        rendered = single.render(single.encode_source(source), single.describe(source), single.describe(driving))
    assert len(rendered.occlusion_maps) == 1 and rendered.occlusion_maps[0].shape == (3, 1, 16, 16)
    assert rendered.occlusion_map.shape == (3, 1, 64, 64) and rendered.prediction.shape == (3, 3, 64, 64)
    assert "up.0.conv.weight" not in single.dense_motion_network.state_dict()


# --------------------------------------------------------------------------------------------
# the family interface


def test_describe_gives_five_points_per_transform_in_range(model, images):
    with torch.no_grad():
        described = model.describe(images[1])
    assert described.value.shape == (3, 15, 2) and described.background is None
    assert described.value.abs().max() < 1


def test_render_of_a_batch_is_each_frame_rendered_alone(model, images):
    source, driving = images
    with torch.no_grad():
        state, kp_source, kp_driving = model.encode_source(source), model.describe(source), model.describe(driving)
        batch = model.render(state, kp_source, kp_driving).prediction
        alone = torch.cat([model.render(state, kp_source, kp_driving[i:i + 1]).prediction for i in range(3)])
    assert torch.allclose(batch, alone, atol=1e-6)


def test_absolute_transfer_is_the_driving_motion(model):
    driving = TpsKeypoints(torch.rand(3, 15, 2))
    source = TpsKeypoints(torch.rand(1, 15, 2))
    moved = model.transfer(source, driving, driving[0:1], MotionSettings(mode="absolute"))
    assert torch.equal(moved.value, driving.value)
    # The splines from the driving points to the source's come fitted, as rendering would fit them.
    splines = fit_tps(driving.value.view(3, 3, 5, 2), source.value.expand(3, -1, -1).reshape(3, 3, 5, 2))
    assert torch.equal(moved.tps_affine, splines.affine) and torch.equal(moved.tps_weights, splines.weights)


def test_relative_transfer_moves_the_source_by_the_driving_motion(model):
    source = TpsKeypoints(torch.rand(1, 15, 2) - 0.5)
    initial = TpsKeypoints(2 * source.value)  # twice as large: hull area x4, so scale 1/2
    driving = TpsKeypoints(initial.value.expand(3, -1, -1) + torch.tensor([0.1, -0.2]))
    unscaled = model.transfer(source, driving, initial, MotionSettings(mode="relative"))
    assert torch.allclose(unscaled.value, source.value + torch.tensor([0.1, -0.2]), atol=1e-6)
    scaled = model.transfer(source, driving, initial, MotionSettings(mode="relative", adapt_scale=True))
    assert torch.allclose(scaled.value, source.value + torch.tensor([0.05, -0.1]), atol=1e-6)
    # The frame that defines the start leaves the source where it is.
    assert torch.equal(relative_motion(source.value, initial.value, initial.value, True), source.value)


def test_avd_transfer_needs_an_avd_network(model, images):
    with torch.no_grad():
        source, driving = model.describe(images[0]), model.describe(images[1])
        assert model.has_avd
        assert model.transfer(source, driving, driving[0:1], MotionSettings(mode="avd")).value.shape == (3, 15, 2)
    without = TpsmmModel(reference_config())
    without.remove_network("avd_network")
    assert not without.has_avd and "avd_network" not in without.built_networks()
    with pytest.raises(ConfigError, match="avd"):
        without.transfer(source, driving, driving[0:1], MotionSettings(mode="avd"))


def test_reconstruct_uses_the_background_predictor(images):
    source, driving = images[0].expand(3, -1, -1, -1), images[1]
    fresh = TpsmmModel(reference_config()).eval()  # a fresh predictor outputs the identity
    with torch.no_grad():
        assert torch.equal(fresh.reconstruct(source, driving).prediction,
                           fresh.animate_frames(source, driving).prediction)
        fresh.bg_predictor.bg_encoder.fc.bias.copy_(torch.tensor([1.0, 0.0, 0.3, 0.0, 1.0, 0.0]))
        moved = fresh.reconstruct(source, driving)
        assert not torch.allclose(moved.prediction, fresh.animate_frames(source, driving).prediction, atol=1e-3)
    # The background transform is the first of the K+1: every pixel shifted by 0.3 in x.
    shift = torch.tensor([[1.0, 0.0, 0.3], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).expand(3, 3, 3)
    with torch.no_grad():
        small_source = fresh.dense_motion_network.down(source)
    expected = warp(small_source, background_grid(3, 16, 16, shift, like=source)[:, 0])
    assert torch.allclose(moved.deformed_source[:, 0], expected, atol=1e-6)


def test_networks_follow_the_config():
    no_bg = TpsmmModel(tiny_config(bg=False))
    assert no_bg.built_networks() == ("kp_detector", "dense_motion_network", "inpainting_network", "avd_network")
    assert no_bg.bg_predictor is None and no_bg.inference_modules() == list(no_bg.built_networks())
    assert no_bg.frame_shape == (64, 64, 3) and no_bg.num_channels == 3 and no_bg.family == "tpsmm"
    data = reference_config().to_dict()
    del data["model_params"]["avd_network_params"]
    assert "avd_network" not in TpsmmModel(TpsmmConfig.from_dict(data)).built_networks()


# --------------------------------------------------------------------------------------------
# original checkpoints, read by fomm.load_checkpoint


def test_original_layout_round_trip(model):
    state = {"optimizer": {"state": {}, "param_groups": [{"lr": 2e-4}]}, "epoch": 12}
    checkpoint = {name: getattr(model, name).state_dict() for name in model.built_networks()} | state
    loaded = load_original(checkpoint, reference_config())
    assert isinstance(loaded, TpsmmModel) and loaded.epoch == 12
    assert loaded.built_networks() == model.built_networks()
    for name in model.built_networks():
        ours, theirs = getattr(model, name).state_dict(), getattr(loaded, name).state_dict()
        assert all(torch.equal(ours[key], theirs[key]) for key in ours)


def test_missing_network_is_named():
    checkpoint = reference_checkpoint()
    del checkpoint["dense_motion_network"]
    with pytest.raises(CheckpointError, match="not a checkpoint of a known model family.*dense_motion_network"):
        load_original(checkpoint, reference_config())


def test_wrong_config_names_every_mismatch():
    data = reference_config().to_dict()
    data["model_params"]["common_params"]["num_tps"] = 4
    with pytest.raises(CheckpointError) as error:
        load_original(reference_checkpoint(), TpsmmConfig.from_dict(data), name="ck.pth.tar")
    message = str(error.value)
    assert "ck.pth.tar: the weights do not fit the Thin-Plate Spline Motion Model (TPSMM) model" in message
    assert "'kp_detector' shape of 'fg_encoder.fc.weight': checkpoint [30, 512], model [40, 512]" in message


def test_a_config_of_another_family_is_refused():
    with pytest.raises(CheckpointError, match="is a Thin-Plate Spline Motion Model.*the config given is a First Order"):
        load_original(reference_checkpoint(), "vox-256")


def test_unexpected_keys_are_named():
    checkpoint = reference_checkpoint()
    checkpoint["inpainting_network"]["final.scale"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"unexpected key 'final\.scale' \[1\]"):
        load_original(checkpoint, reference_config())


def test_checkpoint_before_the_avd_stage_builds_no_avd_network():
    checkpoint = reference_checkpoint()
    del checkpoint["avd_network"]
    loaded = load_original(checkpoint, reference_config())
    assert not loaded.has_avd and loaded.avd_network is None
    with pytest.raises(fomm.UserError, match="no AVD network"):
        fomm.Animator(loaded, motion="avd")


def test_checkpoint_saved_before_bg_start_reconstructs_without_background(images):
    """The original saves the background predictor only from bg_start on; a fresh one outputs
    the identity, which is what going without it gives."""
    checkpoint = reference_checkpoint()
    del checkpoint["bg_predictor"]
    loaded = load_original(checkpoint, reference_config())
    assert loaded.bg_predictor is None
    source, driving = images
    with torch.no_grad():
        reconstructed = loaded.reconstruct(source.expand(3, -1, -1, -1), driving).prediction
        plain = loaded.animate_frames(source.expand(3, -1, -1, -1), driving).prediction
    assert torch.equal(reconstructed, plain)


def test_background_weights_of_a_config_without_background_are_left_out(caplog):
    with caplog.at_level("WARNING"):
        loaded = load_original(reference_checkpoint(), tiny_config(bg=False))
    assert "'bg_predictor' weights are not used" in caplog.text
    assert loaded.bg_predictor is None


def test_avd_weights_need_avd_params():
    data = copy.deepcopy(reference_config().to_dict())
    del data["model_params"]["avd_network_params"]
    with pytest.raises(CheckpointError, match="has 'avd_network' weights, but the model built from the config has no"):
        load_original(reference_checkpoint(), TpsmmConfig.from_dict(data))


def test_unreadable_file_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "broken.pth.tar"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.pth.tar: not a checkpoint"):
        fomm.load_checkpoint(path, config=reference_config())
    with pytest.raises(CheckpointError, match="not found"):
        fomm.load_checkpoint(tmp_path / "absent.pth.tar", config=reference_config())


def test_bf16_autocast_keeps_the_motion_in_float32(model, images):
    source, driving = images
    with torch.no_grad():
        reference = model.animate_frames(source.expand(3, -1, -1, -1), driving)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            reduced = model.animate_frames(source.expand(3, -1, -1, -1), driving)
    for name in ("deformation", "contribution_maps", "deformed_source"):
        assert getattr(reduced, name).dtype == torch.float32, name
    assert all(mask.dtype == torch.float32 for mask in reduced.occlusion_maps)
    # bf16 convolutions move the keypoints by ~1e-3; the frames stay close on average.
    assert (reduced.prediction.float() - reference.prediction).abs().mean() < 0.01
