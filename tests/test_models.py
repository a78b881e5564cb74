"""Model behaviour beyond the reference numbers: initialisation, shapes, devices, geometry."""

from __future__ import annotations

import pytest
import torch

import fomm
from fomm.geometry import coordinate_grid, inverse_2x2, warp
from fomm.models.fomm.dense_motion import sparse_motions

from .conftest import CONFIGS

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def small_config(reference_dir):
    return fomm.load_config(reference_dir / "config.yaml")


def test_fresh_detector_starts_with_identity_jacobians(small_config):
    model = fomm.build_model(small_config).eval()
    kp = model.kp_detector(torch.rand(2, 3, 64, 64))
    assert kp.value.shape == (2, 10, 2) and kp.jacobian.shape == (2, 10, 2, 2)
    assert torch.allclose(kp.jacobian, torch.eye(2).expand(2, 10, 2, 2), atol=1e-6)
    assert kp.value.abs().max() <= 1


@pytest.mark.parametrize("device", DEVICES)
def test_forward_pass_on_device(small_config, device):
    model = fomm.build_model(small_config, device=device).eval()
    source = torch.rand(2, 3, 64, 64, device=device)
    with torch.no_grad():
        kp = model.kp_detector(source)
        out = model.generator(source, kp_source=kp, kp_driving=kp)
    assert out.prediction.shape == (2, 3, 64, 64) and out.prediction.device.type == device
    assert out.mask.shape == (2, 11, 32, 32) and out.occlusion_map.shape == (2, 1, 32, 32)
    assert 0 <= out.prediction.min() and out.prediction.max() <= 1


def test_sparse_motion_is_the_first_order_taylor_expansion():
    torch.manual_seed(0)
    value_s, value_d = torch.rand(1, 3, 2) * 2 - 1, torch.rand(1, 3, 2) * 2 - 1
    jac_s, jac_d = torch.eye(2) + 0.2 * torch.randn(1, 3, 2, 2), torch.eye(2) + 0.2 * torch.randn(1, 3, 2, 2)
    motions = sparse_motions(4, 5, fomm.Keypoints(value_s, jac_s), fomm.Keypoints(value_d, jac_d))
    grid = coordinate_grid(4, 5)
    assert torch.equal(motions[0, 0], grid)
    for k in range(3):
        z = grid[2, 3]
        expected = value_s[0, k] + jac_s[0, k] @ torch.linalg.inv(jac_d[0, k]) @ (z - value_d[0, k])
        assert torch.allclose(motions[0, k + 1, 2, 3], expected, atol=1e-5)


def test_identity_warp_reproduces_image():
    image = torch.rand(1, 3, 9, 13)
    assert torch.allclose(warp(image, coordinate_grid(9, 13)[None]), image, atol=1e-6)


def test_inverse_2x2_agrees_with_torch():
    matrices = torch.eye(2) + 0.3 * torch.randn(100, 2, 2)
    assert torch.allclose(inverse_2x2(matrices), torch.linalg.inv(matrices), atol=1e-5)


def test_relative_motion_with_identical_frames_is_source():
    kp_source = fomm.Keypoints(torch.rand(1, 5, 2), torch.eye(2).repeat(1, 5, 1, 1) * 1.1)
    kp_driving = fomm.Keypoints(torch.rand(1, 5, 2), torch.eye(2).repeat(1, 5, 1, 1) * 0.9)
    result = fomm.relative_keypoints(kp_source, kp_driving, kp_driving)
    assert torch.allclose(result.value, kp_source.value) and torch.allclose(result.jacobian, kp_source.jacobian)


def test_public_api_names():
    for name in ["load_checkpoint", "save_checkpoint", "relative_keypoints", "Keypoints", "load_config",
                 "build_model", "FommModel", "GeneratorOutput"]:
        assert hasattr(fomm, name)


def test_mgif_single_jacobian_map_shares_one_map():
    config = fomm.load_config(CONFIGS / "mgif-256.yaml")
    assert fomm.build_model(config).kp_detector.jacobian.out_channels == 4


def test_resize_displacement_keeps_the_identity_and_a_shift_exact():
    from fomm.geometry import resize_displacement, resize_grid

    identity = coordinate_grid(32, 32)[None]
    assert torch.allclose(resize_displacement(identity, 64, 64), coordinate_grid(64, 64)[None], atol=1e-6)
    # the original's resize moves the identity by up to half a pixel at 64 px (0.5 / 31.5 units)
    original_error = (resize_grid(identity, 64, 64) - coordinate_grid(64, 64)[None]).abs().max()
    assert 0.01 < original_error < 0.02
    shift = torch.tensor([0.1, -0.05])
    moved = resize_displacement(identity + shift, 64, 64)
    assert torch.allclose(moved - coordinate_grid(64, 64)[None], shift.expand(1, 64, 64, 2), atol=1e-6)


@pytest.mark.parametrize("upsampling", ["coordinates", "displacement"])
def test_no_motion_reproduces_the_source_only_with_displacement_upsampling(small_config, upsampling):
    config = small_config.model_copy(deep=True)
    config.model_params.generator_params.deformation_upsampling = upsampling
    model = fomm.build_model(config).eval()
    source = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        kp = model.kp_detector(source)
        deformed = model.generator(source, kp_source=kp, kp_driving=kp).deformed
    error = (deformed - source).abs().max().item()
    if upsampling == "displacement":
        assert error < 1e-5
    else:  # the original's behaviour, kept for its checkpoints: random pixels are resampled off-grid
        assert error > 0.05


def test_occlusion_blend_mixes_warped_source_and_decoder_by_the_occlusion_map(small_config):
    decoded_config = small_config.model_copy(deep=True)
    blended_config = small_config.model_copy(deep=True)
    blended_config.model_params.generator_params.output_blend = "occlusion"
    decoded_model = fomm.build_model(decoded_config).eval()
    blended_model = fomm.build_model(blended_config).eval()
    blended_model.load_state_dict(decoded_model.state_dict())  # no new parameters: strict load
    torch.manual_seed(0)
    source, driving = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        kp_source, kp_driving = decoded_model.kp_detector(source), decoded_model.kp_detector(driving)
        decoded = decoded_model.generator(source, kp_source=kp_source, kp_driving=kp_driving)
        blended = blended_model.generator(source, kp_source=kp_source, kp_driving=kp_driving)
    visible = torch.nn.functional.interpolate(decoded.occlusion_map, size=(64, 64), mode="bilinear")
    expected = visible * decoded.deformed + (1 - visible) * decoded.prediction
    assert torch.allclose(blended.prediction, expected, atol=1e-6)
    assert torch.allclose(blended.deformed, decoded.deformed)
    assert torch.allclose(blended.decoded, decoded.prediction)  # the decoder's image, before the blend
    assert decoded.decoded is None
    assert (blended.prediction - decoded.prediction).abs().mean() > 0.01  # the blend did something


def test_occlusion_blend_with_no_motion_keeps_the_source_where_it_is_visible(small_config):
    config = small_config.model_copy(deep=True)
    config.model_params.generator_params.deformation_upsampling = "displacement"
    config.model_params.generator_params.output_blend = "occlusion"
    model = fomm.build_model(config).eval()
    source = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        kp = model.kp_detector(source)
        out = model.generator(source, kp_source=kp, kp_driving=kp)
    visible = torch.nn.functional.interpolate(out.occlusion_map, size=(64, 64), mode="bilinear")
    # Only the part the occlusion map hands to the (untrained) decoder may differ from the source.
    assert torch.all((out.prediction - source).abs() <= (1 - visible) + 1e-5)
