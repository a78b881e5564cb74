"""The torch backend's fast paths: the fused channels-last networks compute what the model does,
reduced precisions stay within their tolerance, and ``auto`` picks a valid, cached choice."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
import yaml

import fomm
from fomm.animate import Animator
from fomm.assets import BUNDLED_CHECKPOINT
from fomm.backends import MIN_PSNR_DB, candidates, choose_engine, psnr
from fomm.backends.fused import SubpixelUpConvReLU, fused_copy, subpixel_weights
from fomm.backends.torch_engine import TorchEngine
from fomm.backends.selection import forget_choices
from fomm.config import FommConfig, resolve_config_path
from fomm.errors import UserError
from fomm.models.blocks import UpBlock2d

from .conftest import bundled_clip, fresh_cache


@pytest.fixture(scope="module")
def bundled():
    return fomm.load_checkpoint(BUNDLED_CHECKPOINT)


@pytest.fixture(scope="module")
def clip(bundled):
    """The bundled source and the first 16 frames of the bundled driving video, at 64x64."""
    height, width, _ = bundled.frame_shape
    return bundled_clip(height, width, 16)


@pytest.fixture(scope="module")
def plain_frames(bundled, clip):
    """What the networks as they are produce (no fusion, contiguous, fp32)."""
    source, driving = clip
    return Animator(bundled, engine=TorchEngine(bundled, "fp32", optimize=False)).animate(source, driving)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """An empty cache, and no choice remembered from an earlier test of this process."""
    monkeypatch.setenv("FOMM_CACHE", str(fresh_cache(tmp_path / "cache")))
    forget_choices()
    return tmp_path / "cache"


def randomise_batch_norm(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics and affine parameters, so that folding them is tested."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                count = module.num_features
                module.running_mean.copy_(torch.rand(count, generator=generator) * 0.2 - 0.1)
                module.running_var.copy_(torch.rand(count, generator=generator) * 1.5 + 0.5)
                module.weight.copy_(torch.rand(count, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(count, generator=generator) * 0.2 - 0.1)


@pytest.mark.parametrize("size", [4, 24])  # below and above the size where the phase convolution is used
def test_subpixel_up_block_equals_upsample_then_conv(size):
    torch.manual_seed(0)
    block = UpBlock2d(16, 8).eval()
    randomise_batch_norm(block)
    fused = SubpixelUpConvReLU(block.conv, block.norm)
    assert (size * size >= fused.MIN_PIXELS) == (size == 24)
    x = torch.randn(2, 16, size, size + 2)
    with torch.no_grad():
        expected = block(x)
        assert torch.allclose(fused(x), expected, atol=1e-5)
        channels_last = fused(x.contiguous(memory_format=torch.channels_last))
    assert channels_last.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(channels_last, expected, atol=1e-5)


def test_subpixel_weights_are_the_phases_of_the_upsampled_kernel():
    torch.manual_seed(1)
    weight = torch.randn(3, 2, 3, 3)
    x = torch.randn(1, 2, 5, 6)
    upsampled = F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), weight, padding=1)
    phases = F.conv2d(x, subpixel_weights(weight), padding=1)  # (1, 4 * 3, 6, 7)
    for a in (0, 1):
        for b in (0, 1):
            block = phases[:, (2 * a + b) * 3:(2 * a + b + 1) * 3, a:a + 5, b:b + 6]
            assert torch.allclose(upsampled[:, :, a::2, b::2], block, atol=1e-5)


def test_fused_networks_match_the_model_on_vox_architecture():
    # Every fused block kind at the published scale: 5-level hourglasses, 2 down/up blocks, 6 res blocks.
    torch.manual_seed(0)
    model = fomm.build_model(fomm.load_config("vox-256")).eval()
    randomise_batch_norm(model)
    fused = fused_copy(model)
    assert fused.discriminator is None and model.discriminator is not None
    images = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        kp = model.kp_detector(images)
        kp_fused = fused.kp_detector(images.contiguous(memory_format=torch.channels_last))
        expected = model.generator(images[:1].expand(2, -1, -1, -1), kp_source=kp[:1].expand(2), kp_driving=kp)
        features = fused.generator.encode(images[:1])
        got = fused.generator.animate(features, kp_source=kp[:1].expand(2), kp_driving=kp)
    assert (kp_fused.value - kp.value).abs().max() < 1e-5
    assert (got.prediction - expected.prediction).abs().max() < 1e-4


@pytest.mark.parametrize("variant", ["keypoint graph", "no jacobians"])
def test_every_precision_runs_on_config_variants(variant):
    raw = yaml.safe_load(resolve_config_path("sprites-64").read_text())
    if variant == "keypoint graph":
        raw["model_params"]["graph_params"] = {"enabled": True}
    else:
        raw["model_params"]["common_params"]["estimate_jacobian"] = False
    torch.manual_seed(0)
    model = fomm.build_model(FommConfig.model_validate(raw)).eval()
    source, driving = torch.rand(3, 64, 64), torch.rand(5, 3, 64, 64)
    expected = Animator(model, engine=TorchEngine(model, "fp32", optimize=False)).animate(source, driving)
    assert (Animator(model, batch_size=2).animate(source, driving) - expected).abs().max() <= 1e-4
    for precision in ("bf16", "fp16"):
        assert psnr(Animator(model, precision=precision).animate(source, driving), expected) >= MIN_PSNR_DB


def test_fp32_is_within_1e4_of_the_plain_networks(bundled, clip, plain_frames):
    source, driving = clip
    frames = Animator(bundled, precision="fp32", batch_size=5).animate(source, driving)
    assert (frames - plain_frames).abs().max() <= 1e-4


def test_fp32_engine_reproduces_the_reference_outputs(reference_dir, reference_io):
    model = fomm.load_checkpoint(reference_dir / "checkpoint.pth.tar", config=reference_dir / "config.yaml")
    engine = TorchEngine(model, "fp32")
    with torch.inference_mode():
        prepared = engine.prepare_source(reference_io["source"])
        kp_driving = engine.describe(reference_io["driving"])
        output = engine.render(prepared, kp_driving)
    assert (kp_driving.value - reference_io["kp_driving.value"]).abs().max() <= 1e-4
    assert (output.prediction - reference_io["generator.prediction"]).abs().max() <= 1e-4


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_stays_within_40_db_of_fp32(bundled, clip, plain_frames, precision):
    source, driving = clip
    animator = Animator(bundled, precision=precision)
    frames = animator.animate(source, driving)
    assert animator.engine.precision == precision
    assert frames.dtype == torch.float32 and frames.shape == plain_frames.shape
    assert psnr(frames, plain_frames) >= MIN_PSNR_DB
    # Keypoints are computed in fp32 even when the convolutions are not.
    keypoints = animator.describe(driving[:2])
    assert keypoints.value.dtype == torch.float32 and keypoints.jacobian.dtype == torch.float32


def test_keypoint_statistics_stay_fp32_under_autocast(bundled, clip):
    _, driving = clip
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        detection = bundled.kp_detector.detect(driving[:2])
        motion = bundled.generator.dense_motion_network(driving[:1].expand(2, -1, -1, -1),
                                                        kp_source=detection.keypoints, kp_driving=detection.keypoints)
    assert detection.heatmap.dtype == detection.keypoints.value.dtype == torch.float32
    assert motion.deformation.dtype == motion.mask.dtype == motion.occlusion_map.dtype == torch.float32


def test_auto_checks_only_what_flags_and_probe_allow_and_caches_it(bundled, clip, plain_frames, cache):
    source, driving = clip
    animator = Animator(bundled, precision="auto", backend="torch")
    frames = animator.animate(source, driving)
    offered = {(c.backend, c.precision) for c in candidates(bundled.device, "torch", "auto")}
    chosen = animator.engine
    assert (chosen.backend, chosen.precision) in offered
    # No whole-model timing of every candidate: only reduced precisions the flags offer are run,
    # once each on the first frame, to check their PSNR; the first that holds is the choice.
    assert all(m.precision != "fp32" and (m.backend, m.precision) in offered for m in animator.measurements)
    holding = [m for m in animator.measurements if m.psnr_db >= MIN_PSNR_DB]
    if holding:
        assert (chosen.backend, chosen.precision) == (holding[0].backend, holding[0].precision)
    else:
        assert chosen.precision == "fp32"
    if len(offered) > 1:  # more than one candidate: the choice was made, then stored
        stored = json.loads((cache / "choices.json").read_text())
        assert [(r["backend"], r["precision"]) for r in stored.values()] == [(chosen.backend, chosen.precision)]
        again = Animator(bundled, precision="auto", backend="torch")
        again.animate(source, driving[:4])
        assert again.measurements == [] and again.engine.name == chosen.name
    assert psnr(frames, plain_frames) >= MIN_PSNR_DB


def test_explicit_fp32_with_auto_backend_stays_exact(bundled, clip, plain_frames, cache):
    source, driving = clip
    engine, _ = choose_engine(bundled, "torch", "fp32", source[None], driving[:2])
    assert engine.name == "torch fp32"
    frames = Animator(bundled, engine=engine).animate(source, driving)
    assert (frames - plain_frames).abs().max() <= 1e-4


def test_unknown_precision_or_backend_is_a_user_error(bundled):
    with pytest.raises(UserError, match="precision"):
        Animator(bundled, precision="int4")
    with pytest.raises(UserError, match="backend"):
        Animator(bundled, backend="tensorrt")
    with pytest.raises(UserError, match="torch backend"):
        TorchEngine(bundled, "int8")
