"""``loss_weights.decoded_reconstruction``: the reconstruction loss once more on the decoder's own
image, before ``output_blend: occlusion`` mixes in the warped source. Where the occlusion map is
near 1 the blended output is the warped source, so the plain loss leaves the decoder untaught
there; this loss is what reaches it (issue 23: a renderer that draws what the warp cannot place)."""

from __future__ import annotations

import copy

import pytest
import torch
from fomm.config import FommConfig
from fomm.errors import ConfigError
from fomm.models.fomm.objective import GeneratorFullModel
from tests.train_helpers import TINY_CONFIG, blob_batch, generator_objective, train_briefly


def _config(decoded_weight: float, blend: str = "occlusion", perceptual: tuple[float, ...] = (10,)) -> FommConfig:
    data = copy.deepcopy(TINY_CONFIG)
    data["model_params"]["generator_params"]["output_blend"] = blend
    data["train_params"]["loss_weights"].update(decoded_reconstruction=decoded_weight, perceptual=list(perceptual))
    return FommConfig.from_dict(data)


def _objective(decoded_weight: float) -> GeneratorFullModel:
    """The generator objective of a fresh trainer (weights from the config's seed, float32)."""
    return generator_objective(_config(decoded_weight))


def test_the_weight_needs_the_occlusion_blend_and_a_perceptual_weight():
    with pytest.raises(ConfigError, match="decoded_reconstruction.*output_blend: occlusion"):
        _config(1.0, blend="decoded")
    with pytest.raises(ConfigError, match="decoded_reconstruction.*perceptual needs a non-zero weight"):
        _config(1.0, perceptual=(0,))
    with pytest.raises(ConfigError, match="decoded_reconstruction"):
        _config(-1.0)
    assert _config(0.0, blend="decoded").train_params.loss_weights.decoded_reconstruction == 0


def test_the_loss_is_the_reconstruction_loss_of_the_decoders_image():
    objective = _objective(2.5)
    batch = blob_batch()
    torch.manual_seed(7)
    losses, generated = objective(batch)
    losses = {name: value.detach() for name, value in losses.items()}
    output = objective.generator(batch["source"], kp_source=objective.kp_detector(batch["source"]),
                                 kp_driving=objective.kp_detector(batch["driving"]))
    assert torch.allclose(generated["prediction"], output.prediction, atol=1e-6)
    real = objective.pyramid(batch["driving"])
    expected = 2.5 * objective.perceptual(objective.pyramid(output.decoded), real).detach()
    assert float(losses["decoded_reconstruction"]) == pytest.approx(float(expected), rel=1e-5)
    # The decoder's image is not the blended prediction, so the two losses differ.
    assert float(losses["decoded_reconstruction"]) != pytest.approx(2.5 * float(losses["perceptual"]), rel=1e-2)


def test_only_the_decoded_loss_teaches_the_decoder_where_the_source_is_visible():
    """With the occlusion map forced to 1 (every pixel visible), the blended prediction is the
    warped source and the decoder's last layer gets no gradient from the plain loss."""
    gradients = {}
    for weight in (0.0, 1.0):
        objective = _objective(weight)
        with torch.no_grad():
            objective.generator.dense_motion_network.occlusion.bias.fill_(40.0)  # sigmoid(40 + ...) = 1
        torch.manual_seed(7)
        losses, _ = objective(blob_batch())
        objective.generator.zero_grad()
        sum(losses.values()).backward()
        gradients[weight] = objective.generator.final.weight.grad
    assert gradients[0.0] is None or gradients[0.0].abs().max() == 0
    assert gradients[1.0].abs().max() > 1e-4


def test_fomm_train_with_the_decoded_loss_writes_a_checkpoint_that_carries_it(tmp_path):
    from fomm.data.synthetic.writer import make_dataset

    root = tmp_path / "sprites"
    make_dataset("sprites", root, videos=4, frames=4, size=32, seed=0, workers=1)
    checkpoint = train_briefly(_config(1.0), root, tmp_path)
    assert checkpoint["config"]["train_params"]["loss_weights"]["decoded_reconstruction"] == 1.0
