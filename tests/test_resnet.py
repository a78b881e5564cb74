"""ResNet-18 written out with torchvision's parameter names (fomm.models.resnet)."""

from __future__ import annotations

import json
import math

import torch
import torch.nn.functional as F

from fomm.models.resnet import BasicBlock, ResNet18

from .tpsmm_helpers import tpsmm_fixture


def published_shapes(network: str, prefix: str) -> dict[str, list[int]]:
    """State-dict shapes of a torchvision resnet18 inside a published TPSMM network."""
    keys = json.loads(tpsmm_fixture("keys-vox-256.json").read_text())[network]
    return {key[len(prefix):]: shape for key, shape in keys.items()}


def shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    return {key: list(value.shape) for key, value in model.state_dict().items()}


def test_state_dict_is_the_published_keypoint_detectors_resnet():
    # TPSMM's kp_detector: torchvision resnet18 with fc replaced by Linear(512, 10 * 5 * 2).
    assert shapes(ResNet18(num_outputs=100)) == published_shapes("kp_detector", "fg_encoder.")


def test_state_dict_is_the_published_background_predictors_resnet():
    # TPSMM's bg_predictor: a 6-channel conv1 (source and driving stacked) and fc to 6 affine numbers.
    assert shapes(ResNet18(num_outputs=6, in_channels=6)) == published_shapes("bg_predictor", "bg_encoder.")


def test_output_shape_and_any_input_size():
    model = ResNet18(num_outputs=10).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 64, 64)).shape == (2, 10)
        # Global average pooling: other sizes, even not multiples of 32, give the same shape.
        assert model(torch.rand(1, 3, 75, 50)).shape == (1, 10)
        assert model.features(torch.rand(1, 3, 64, 64)).shape == (1, model.num_features) == (1, 512)


def test_basic_block_is_the_residual_formula():
    torch.manual_seed(0)
    block = BasicBlock(8, 16, stride=2)
    for norm in (block.bn1, block.bn2, block.downsample[1]):
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.data.uniform_(0.5, 1.5)
        norm.bias.data.uniform_(-0.5, 0.5)
    block.eval()
    x = torch.randn(2, 8, 10, 10)

    def batch_norm(value, norm):
        return F.batch_norm(value, norm.running_mean, norm.running_var, norm.weight, norm.bias, eps=1e-5)

    # relu(bn2(conv2(relu(bn1(conv1(x))))) + bn(conv1x1(x))), by hand with the block's parameters.
    out = F.relu(batch_norm(F.conv2d(x, block.conv1.weight, stride=2, padding=1), block.bn1))
    out = batch_norm(F.conv2d(out, block.conv2.weight, padding=1), block.bn2)
    shortcut = batch_norm(F.conv2d(x, block.downsample[0].weight, stride=2), block.downsample[1])
    with torch.no_grad():
        assert torch.allclose(block(x), F.relu(out + shortcut), atol=1e-6)
    assert BasicBlock(8, 8).downsample is None


def test_initialisation_is_torchvisions():
    torch.manual_seed(0)
    model = ResNet18()
    assert all(torch.equal(norm.weight, torch.ones_like(norm.weight)) and not norm.bias.any()
               for norm in model.modules() if isinstance(norm, torch.nn.BatchNorm2d))
    # Kaiming normal, fan out, ReLU gain: std sqrt(2 / (out_channels * k * k)).
    weight = model.layer3[0].conv1.weight
    assert abs(weight.std().item() / math.sqrt(2 / (256 * 9)) - 1) < 0.02
