"""Winograd F(4x4, 3x3) convolutions (fp32 CPU inference): the transforms are the paper's
matrices, the convolution is ``conv2d``'s to rounding, and the fused networks that use it still
reproduce the original implementation's outputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import fomm
from fomm.assets import BUNDLED_CHECKPOINT
from fomm.backends import winograd
from fomm.backends.fused import FusedResBlock, fused_copy, has_winograd_layers
from fomm.backends.winograd import (input_transform, output_transform, winograd_conv3x3, winograd_faster,
                                    winograd_weight)

# Lavin & Gray (2016), F(4x4, 3x3).
B_T = torch.tensor([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                    [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=torch.float64)
A_T = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                   dtype=torch.float64)


def test_transforms_are_the_matrices_of_the_paper():
    taps = torch.randn(6, 5, 7, dtype=torch.float64)
    transformed = torch.empty(6, 5, 7, dtype=torch.float64)
    input_transform(list(taps), transformed)
    assert torch.allclose(transformed, torch.einsum("rk,kij->rij", B_T, taps))
    products = torch.randn(6, 5, 7, dtype=torch.float64)
    outputs = [torch.empty(5, 7, dtype=torch.float64) for _ in range(4)]
    output_transform(list(products), outputs)
    assert torch.allclose(torch.stack(outputs), torch.einsum("ak,kij->aij", A_T, products))


@pytest.mark.parametrize("batch, in_channels, out_channels, height, width",
                         [(1, 32, 48, 8, 8), (3, 16, 24, 7, 10), (2, 8, 8, 13, 1)])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_convolution_equals_conv2d(batch, in_channels, out_channels, height, width, memory_format):
    # Sizes that are not multiples of the 4x4 output tile are padded and cropped.
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, in_channels, height, width, generator=generator).contiguous(memory_format=memory_format)
    weight = torch.randn(out_channels, in_channels, 3, 3, generator=generator) / (3 * in_channels ** 0.5)
    bias = torch.randn(out_channels, generator=generator)
    expected = F.conv2d(x.double(), weight.double(), bias.double(), padding=1)
    got = winograd_conv3x3(x, winograd_weight(weight), bias)
    assert got.shape == expected.shape and got.dtype == torch.float32
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert (got.double() - expected).abs().max() < 1e-4 * expected.abs().max()


def test_convolution_runs_in_and_out_of_inference_mode_in_either_order():
    # Its scratch buffers are kept between calls; a buffer made under inference mode cannot be
    # written under no_grad (the evaluation code) and the other way round.
    weight, bias, x = torch.randn(8, 8, 3, 3), torch.zeros(8), torch.randn(1, 8, 8, 8)
    expected = F.conv2d(x, weight, bias, padding=1)
    for mode in (torch.inference_mode, torch.no_grad, torch.inference_mode, torch.no_grad):
        with mode():
            assert (winograd_conv3x3(x, winograd_weight(weight), bias) - expected).abs().max() < 1e-4


def test_only_3x3_kernels_are_transformed():
    with pytest.raises(ValueError, match=r"3x3 kernels, not \(5, 5\)"):
        winograd_weight(torch.zeros(4, 4, 5, 5))


def test_faster_is_false_without_measuring_where_it_cannot_apply():
    winograd._measured.clear()
    weight = torch.randn(64, 64, 3, 3)
    small = torch.randn(1, 64, 16, 16)
    assert not winograd_faster(small, weight, winograd_weight(weight), torch.zeros(64))
    assert not winograd_faster(small.bfloat16(), weight.bfloat16(), winograd_weight(weight), torch.zeros(64))
    assert winograd._measured == {}


def test_faster_measures_once_per_shape_and_thread_count():
    winograd._measured.clear()
    weight = torch.randn(128, 128, 3, 3) / 34
    taps, bias = winograd_weight(weight), torch.zeros(128)
    x = torch.randn(2, 128, 8, 8)
    first = winograd_faster(x, weight, taps, bias)
    assert list(winograd._measured) == [(128, 128, 8, 8, torch.get_num_threads())]
    winograd._measured[(128, 128, 8, 8, torch.get_num_threads())] = not first  # what a second call reads
    assert winograd_faster(x, weight, taps, bias) is (not first)


def test_fused_networks_with_winograd_reproduce_the_reference_outputs(reference_dir, reference_io):
    # The original implementation's eval-mode outputs on a trained checkpoint, with every residual
    # block's convolutions forced through Winograd (its 32 channels are below the automatic threshold).
    model = fomm.load_checkpoint(reference_dir / "checkpoint.pth.tar", config=reference_dir / "config.yaml")
    networks = fused_copy(model, winograd="on")
    blocks = [module for module in networks.modules() if isinstance(module, FusedResBlock)]
    assert blocks and all(block.winograd == "on" for block in blocks)
    with torch.inference_mode():
        source = reference_io["source"].contiguous(memory_format=torch.channels_last)
        kp_source = networks.kp_detector(source)
        kp_driving = networks.kp_detector(reference_io["driving"].contiguous(memory_format=torch.channels_last))
        features = networks.generator.encode(source)
        output = networks.generator.animate(features, kp_source=kp_source, kp_driving=kp_driving)
    assert all(block._taps is not None for block in blocks)  # Winograd ran
    assert (output.prediction - reference_io["generator.prediction"]).abs().max() <= 1e-4


def test_winograd_is_not_used_while_training():
    model = fomm.load_checkpoint(BUNDLED_CHECKPOINT)
    networks = fused_copy(model, winograd="on")
    block = next(module for module in networks.modules() if isinstance(module, FusedResBlock))
    x = torch.randn(1, block.weight1.shape[1], 8, 8, requires_grad=True)
    block(x).sum().backward()
    assert block._taps is None and x.grad is not None


def test_unknown_winograd_choice_is_named():
    model = fomm.load_checkpoint(BUNDLED_CHECKPOINT)
    with pytest.raises(ValueError, match="winograd must be one of auto, on, off, not 'always'"):
        fused_copy(model, winograd="always")


@pytest.mark.parametrize("config, wide", [("vox-256", True), ("mraa-vox256", True), ("tpsmm-vox-256", False),
                                          ("sprites-64", False)])
def test_models_with_wide_batch_norm_residual_blocks_are_the_ones_offered_winograd(config, wide):
    # TPSMM's residual blocks use instance norm, which the fused copy keeps as it is.
    model = fomm.build_model(fomm.load_config(config))
    assert has_winograd_layers(model) is wide
