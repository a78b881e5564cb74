"""The MRAA family's parts on small configs: config schema, region variants, background motion,
motion transfer, rendering paths and the family interface's batching."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from fomm.config import PACKAGED_CONFIGS
from fomm.errors import ConfigError
from fomm.models.family import MotionSettings
from fomm.models.mraa import MraaConfig, Regions
from fomm.models.mraa.bg_motion_predictor import BgMotionPredictor
from fomm.models.mraa.config import BgPredictorParams
from fomm.models.mraa.model import build_mraa_model
from fomm.models.mraa.pixelwise_flow_predictor import sparse_motions
from fomm.models.mraa.regions import movement_scale

REFERENCE_CONFIG = Path(__file__).resolve().parent / "data" / "mraa-reference" / "config.yaml"


def small_config(**model_changes) -> dict:
    """The fixture's config (64x64, 4 regions) as a dictionary, with ``model_params`` changes:
    keys with dots reach into sub-sections (``generator_params.skips``); None removes a key."""
    data = yaml.safe_load(REFERENCE_CONFIG.read_text())
    for dotted, value in model_changes.items():
        section = data["model_params"]
        *path, key = dotted.split(".")
        for part in path:
            section = section[part]
        if value is None:
            section.pop(key, None)
        else:
            section[key] = value
    return data


def small_model(seed: int = 0, **model_changes):
    torch.manual_seed(seed)
    return build_mraa_model(MraaConfig.from_dict(small_config(**model_changes))).eval()


def images(batch: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, 8, 8, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(64, 64), mode="bilinear", align_corners=False)


# ------------------------------------------------------------------------------------------ config


def test_unknown_key_is_an_error_that_names_it_and_the_source():
    data = small_config()
    data["model_params"]["region_predictor_params"]["temprature"] = 0.1
    with pytest.raises(ConfigError) as caught:
        MraaConfig.from_dict(data, source="my.yaml")
    assert "my.yaml" in str(caught.value)
    assert "unknown key 'model_params.region_predictor_params.temprature'" in str(caught.value)


def test_original_layout_with_null_frame_shape_loads_and_round_trips(tmp_path):
    data = yaml.safe_load((PACKAGED_CONFIGS / "mraa-ted384.yaml").read_text())
    data["dataset_params"]["frame_shape"] = None  # as the published file says
    path = tmp_path / "ted384.yaml"
    path.write_text(yaml.safe_dump(data))
    config = MraaConfig.load(path)
    assert config.dataset_params.frame_shape is None
    assert config.train_avd_params.random_scale == 0.25 and config.animate_params.mode == "avd"
    assert config.visualizer_params.region_bg_color == (1, 1, 1)
    assert MraaConfig.from_dict(config.to_dict()) == config
    unsized = small_config()
    unsized["dataset_params"]["frame_shape"] = None
    assert build_mraa_model(MraaConfig.from_dict(unsized)).frame_shape == (256, 256, 3)
    assert build_mraa_model(MraaConfig.from_dict(small_config())).frame_shape == (64, 64, 3)


def test_covariance_heatmaps_need_a_covariance():
    with pytest.raises(ConfigError, match="use_covar_heatmap"):
        MraaConfig.from_dict(small_config(**{"estimate_affine": False, "region_predictor_params.pca_based": False}))


# ------------------------------------------------------------------------------------------ regions


def test_pca_regions_affine_is_the_square_root_of_the_covariance():
    model = small_model()
    with torch.no_grad():
        detection = model.region_predictor.detect(images(2, seed=1))
    regions = detection.regions
    assert regions.shift.shape == (2, 4, 2) and regions.affine.shape == (2, 4, 2, 2)
    assert detection.u.shape == detection.d.shape == (2, 4, 2, 2)
    torch.testing.assert_close(regions.affine @ regions.affine.transpose(-1, -2), regions.covar,
                               rtol=1e-5, atol=1e-6)
    # Centres are heatmap means: inside the image.
    assert regions.shift.abs().max() <= 1
    torch.testing.assert_close(detection.heatmap.sum(dim=(2, 3)), torch.ones(2, 4))


def test_regressed_affine_frames_start_at_the_identity():
    model = small_model(**{"region_predictor_params.pca_based": False})
    assert model.region_predictor.jacobian is not None
    with torch.no_grad():
        regions = model.describe(images(2, seed=1))
    eye = torch.eye(2).expand(2, 4, 2, 2)
    torch.testing.assert_close(regions.affine, eye)
    torch.testing.assert_close(regions.covar, eye)


def test_centres_only_regions_render_with_pure_translations():
    model = small_model(**{"estimate_affine": False, "region_predictor_params.pca_based": False,
                           "generator_params.pixelwise_flow_predictor_params.use_covar_heatmap": False})
    source, driving = images(1, seed=1), images(2, seed=2)
    with torch.no_grad():
        source_regions, driving_regions = model.describe(source), model.describe(driving)
        rendered = model.render(model.encode_source(source), source_regions, driving_regions)
    assert source_regions.covar is None and source_regions.affine is None
    assert rendered.prediction.shape == (2, 3, 64, 64)
    motions = sparse_motions(source_regions.expand(2), driving_regions, 16, 16, revert_axis_swap=True)
    moved = motions[:, 1:] - motions[:, :1]  # each region's motion minus the identity (the background)
    torch.testing.assert_close(moved, (source_regions.shift - driving_regions.shift)[:, :, None, None, :]
                               .expand_as(moved))


def test_regions_travel_as_a_tensor_bundle():
    model = small_model()
    with torch.no_grad():
        regions = model.describe(images(3, seed=1))
    rebuilt = Regions.from_tensors(regions.tensors(), regions.layout())
    assert rebuilt.background is None
    torch.testing.assert_close(rebuilt.affine, regions.affine)
    joined = Regions.cat([regions[0:1], regions[1:3]])
    torch.testing.assert_close(joined.covar, regions.covar)
    assert regions[1:2].expand(5).shift.shape == (5, 4, 2)


# ------------------------------------------------------------------------------------------ background


@pytest.mark.parametrize("bg_type, size", [("zero", 0), ("shift", 2), ("affine", 6), ("perspective", 8)])
def test_background_predictor_starts_at_the_identity_and_fills_its_entries(bg_type, size):
    params = BgPredictorParams(block_expansion=4, max_features=16, num_blocks=2, bg_type=bg_type)
    predictor = BgMotionPredictor(params, num_channels=3).eval()
    source, driving = images(2, seed=1), images(2, seed=2)
    torch.testing.assert_close(predictor(source, driving), torch.eye(3).expand(2, 3, 3))
    if size == 0:
        assert not list(predictor.parameters())
        return
    with torch.no_grad():
        predictor.fc.bias.copy_(torch.arange(1.0, size + 1))
    out = predictor(source, driving)
    expected = {
        "shift": [[1, 0, 1], [0, 1, 2], [0, 0, 1]],
        "affine": [[1, 2, 3], [4, 5, 6], [0, 0, 1]],
        "perspective": [[1, 2, 3], [4, 5, 6], [7, 8, 1]],
    }[bg_type]
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float32).expand(2, 3, 3))


def test_background_motion_is_applied_in_homogeneous_coordinates():
    model = small_model()
    with torch.no_grad():
        regions = model.describe(images(1, seed=1))
    translate = torch.tensor([[[1.0, 0.0, 0.25], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]]])
    halve = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]]])
    still = sparse_motions(regions, regions, 8, 8, revert_axis_swap=True)[:, 0]
    moved = sparse_motions(regions, dataclasses.replace(regions, background=translate), 8, 8, True)[:, 0]
    torch.testing.assert_close(moved, still + torch.tensor([0.25, -0.5]))
    divided = sparse_motions(regions, dataclasses.replace(regions, background=halve), 8, 8, True)[:, 0]
    torch.testing.assert_close(divided, still / 2)


def test_reconstruct_moves_the_background_by_the_predictor():
    model = small_model()
    with torch.no_grad():
        model.bg_predictor.fc.bias.copy_(torch.tensor([1.0, 0.0, 0.3, 0.0, 1.0, 0.0]))
        source, driving = images(2, seed=1), images(2, seed=2)
        reconstructed = model.reconstruct(source, driving)
        driving_regions = dataclasses.replace(model.describe(driving), background=model.bg_predictor(source, driving))
        by_hand = model.render(model.encode_source(source), model.describe(source), driving_regions)
        without = model.animate_frames(source, driving)
    torch.testing.assert_close(reconstructed.prediction, by_hand.prediction)
    assert (reconstructed.prediction - without.prediction).abs().max() > 1e-3


def test_axis_flip_of_a_region_is_reverted():
    model = small_model()
    with torch.no_grad():
        source, driving = model.describe(images(1, seed=1)), model.describe(images(1, seed=2))
    flipped = dataclasses.replace(source, affine=-source.affine)  # the same covariance
    reverted = [sparse_motions(regions, driving, 8, 8, revert_axis_swap=True) for regions in (source, flipped)]
    torch.testing.assert_close(reverted[0], reverted[1])
    kept = [sparse_motions(regions, driving, 8, 8, revert_axis_swap=False) for regions in (source, flipped)]
    assert (kept[0] - kept[1]).abs().max() > 1e-3


# ------------------------------------------------------------------------------------------ transfer


def test_relative_transfer_keeps_the_source_at_the_initial_frame_and_scales_by_hull_areas():
    model = small_model()
    with torch.no_grad():
        source = model.describe(images(1, seed=1))
        driving = model.describe(images(3, seed=2))
    initial = driving[0:1]
    for adapt in (True, False):
        at_start = model.transfer(source, initial, initial, MotionSettings(mode="relative", adapt_scale=adapt))
        torch.testing.assert_close(at_start.shift, source.shift)
        torch.testing.assert_close(at_start.affine, source.affine, rtol=1e-5, atol=1e-6)
    scaled = model.transfer(source, driving, initial, MotionSettings(mode="relative", adapt_scale=True))
    unscaled = model.transfer(source, driving, initial, MotionSettings(mode="relative", adapt_scale=False))
    scale = movement_scale(source, initial)
    assert scale != pytest.approx(1.0, abs=1e-3)
    torch.testing.assert_close(scaled.shift - source.shift, scale * (unscaled.shift - source.shift))
    torch.testing.assert_close(unscaled.shift, driving.shift - initial.shift + source.shift)
    # The covariance stays the driving frame's (the original passes it through).
    assert scaled.covar is driving.covar and scaled.background is None


def test_absolute_transfer_is_the_driving_regions_and_avd_keeps_the_batch():
    model = small_model()
    with torch.no_grad():
        source = model.describe(images(1, seed=1))
        driving = model.describe(images(3, seed=2))
        absolute = model.transfer(source, driving, driving[0:1], MotionSettings(mode="absolute"))
        avd = model.transfer(source, driving, driving[0:1], MotionSettings(mode="avd"))
    assert absolute.shift is driving.shift and absolute.affine is driving.affine
    assert model.has_avd and avd.shift.shape == (3, 4, 2)
    torch.testing.assert_close(avd.covar, avd.affine @ avd.affine.transpose(-1, -2))


# ------------------------------------------------------------------------------------------ rendering


def test_a_batch_one_source_renders_as_the_same_source_repeated():
    model = small_model()
    source, driving = images(1, seed=1), images(3, seed=2)
    with torch.no_grad():
        once = model.render(model.encode_source(source), model.describe(source), model.describe(driving))
        repeated_source = source.expand(3, -1, -1, -1)
        repeated = model.render(model.encode_source(repeated_source), model.describe(repeated_source),
                                model.describe(driving))
    # Equal up to the rounding of batched convolutions (amplified by sampling sharp images).
    for key in ("prediction", "deformed", "occlusion_map", "optical_flow", "mask", "sparse_deformed"):
        torch.testing.assert_close(getattr(once, key), getattr(repeated, key), rtol=0, atol=1e-4)
    assert once.mask.shape == (3, 5, 16, 16) and once.sparse_deformed.shape == (3, 5, 3, 16, 16)
    torch.testing.assert_close(once.mask.sum(dim=1), torch.ones(3, 16, 16))


@pytest.mark.parametrize("changes", [
    {"generator_params.skips": False},
    {"generator_params.pixelwise_flow_predictor_params.estimate_occlusion_map": False},
    {"generator_params.pixelwise_flow_predictor_params.use_deformed_source": False},
    {"generator_params.pixelwise_flow_predictor_params": None},
], ids=["no-skips", "no-occlusion", "heatmaps-only", "no-flow"])
def test_generator_variants_render(changes):
    model = small_model(**changes)
    source, driving = images(1, seed=1), images(2, seed=2)
    with torch.no_grad():
        rendered = model.animate_frames(source.expand(2, -1, -1, -1), driving)
    assert rendered.prediction.shape == (2, 3, 64, 64)
    assert rendered.prediction.min() >= 0 and rendered.prediction.max() <= 1
    has_flow = model.generator.pixelwise_flow_predictor is not None
    assert (rendered.deformed is not None) == has_flow
    if has_flow:
        estimates = model.generator.pixelwise_flow_predictor.occlusion is not None
        assert (rendered.occlusion_map is not None) == estimates


def test_a_config_without_avd_params_has_no_avd_network():
    model = small_model(avd_network_params=None)
    assert not model.has_avd and model.built_networks() == ("region_predictor", "bg_predictor", "generator")
    assert model.inference_modules() == ["region_predictor", "generator"]
    copy.deepcopy(model)  # a model stays an ordinary module


def test_bf16_autocast_keeps_region_algebra_and_sampling_in_fp32():
    model = small_model()
    source, driving = images(1, seed=1), images(2, seed=2)
    with torch.no_grad():
        exact = model.animate_frames(source.expand(2, -1, -1, -1), driving).prediction
        with torch.autocast("cpu", dtype=torch.bfloat16):
            source_regions, driving_regions = model.describe(source), model.describe(driving)
            state = model.encode_source(source)
            assert source_regions.affine.dtype == torch.float32  # region statistics: fp32
            for mode in ("absolute", "relative", "avd"):
                regions = model.transfer(source_regions, driving_regions, driving_regions[0:1],
                                         MotionSettings(mode=mode, adapt_scale=True))
                rendered = model.render(state, source_regions, regions)
                assert rendered.optical_flow.dtype == torch.float32 and torch.isfinite(rendered.prediction).all()
                if mode == "absolute":
                    assert (rendered.prediction.float() - exact).abs().max() < 0.1
