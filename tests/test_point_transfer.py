"""The learned point transfer of FOMM models (fomm.models.fomm.point_transfer): config, model,
checkpoint and command line (``--motion learned``)."""

from __future__ import annotations

import copy

import pytest
import torch

import fomm
from fomm.animate import Animator
from fomm.assets import BUNDLED_DRIVING, BUNDLED_SOURCE
from fomm.config import FommConfig
from fomm.data.video import read_video
from fomm.errors import CheckpointError, ConfigError, UserError
from fomm.models import MotionSettings
from fomm.models.fomm import FommModel, Keypoints, PointTransfer, relative_keypoints
from fomm.models.fomm.point_transfer import as_keypoints, as_points
from tests.cli_runner import run_fomm
from tests.train_helpers import TINY_CONFIG


def _config(**point_transfer) -> FommConfig:
    data = copy.deepcopy(TINY_CONFIG)
    data["model_params"]["point_transfer_params"] = point_transfer
    return FommConfig.from_dict(data)


def _model(seed: int = 0, nudge: float = 0.0, **point_transfer) -> FommModel:
    """A tiny model with a point transfer; ``nudge``: the correction's bias, so that the learned
    motion differs from the relative one."""
    torch.manual_seed(seed)
    model = FommModel(_config(**point_transfer)).eval()
    with torch.no_grad():
        model.point_transfer.correction.bias.fill_(nudge)
    return model


def _keypoints(batch: int, num_kp: int, seed: int) -> Keypoints:
    generator = torch.Generator().manual_seed(seed)
    value = torch.rand(batch, num_kp, 2, generator=generator) * 2 - 1
    jacobian = torch.eye(2) + 0.2 * torch.randn(batch, num_kp, 2, 2, generator=generator)
    return Keypoints(value=value, jacobian=jacobian)


def test_points_and_keypoints_convert_both_ways_exactly():
    keypoints = _keypoints(3, 5, seed=0)
    points = as_points(keypoints)
    assert points.shape == (3, 5, 6)
    back = as_keypoints(points)
    assert torch.equal(back.value, keypoints.value) and torch.equal(back.jacobian, keypoints.jacobian)
    with pytest.raises(ValueError, match="jacobians"):
        as_points(Keypoints(value=keypoints.value))


@pytest.mark.parametrize("adapt", [False, True])
def test_an_untrained_transfer_is_the_relative_transfer_to_the_last_bit(adapt):
    source, initial, driving = (_keypoints(4, 5, seed) for seed in (1, 2, 3))
    transfer = PointTransfer(5, _config().model_params.point_transfer_params)
    moved = transfer(source, driving, initial, adapt_movement_scale=adapt)
    expected = relative_keypoints(source, driving, initial, adapt_movement_scale=adapt)
    assert torch.equal(moved.value, expected.value) and torch.equal(moved.jacobian, expected.jacobian)
    with torch.no_grad():
        transfer.correction.bias[0] = 0.25  # x of keypoint 0
    nudged = transfer(source, driving, initial, adapt_movement_scale=adapt)
    assert torch.equal(nudged.value[:, 0, 0], expected.value[:, 0, 0] + 0.25)
    assert torch.equal(nudged.value[:, 1:], expected.value[:, 1:])


def test_the_transfer_sees_shapes_not_places():
    """Shifting the source, or both driving sets, by one vector moves the result by that vector and
    changes the correction not at all (every set is centred on its own mean before the network)."""
    torch.manual_seed(0)
    transfer = PointTransfer(5, _config(hidden_features=16, num_layers=2).model_params.point_transfer_params)
    torch.nn.init.normal_(transfer.correction.weight, std=0.1)
    source, initial, driving = (_keypoints(2, 5, seed) for seed in (1, 2, 3))
    shift = torch.tensor([0.1, -0.2])
    moved = transfer(source, driving, initial)
    shifted_source = transfer(Keypoints(source.value + shift, source.jacobian), driving, initial)
    shifted_driving = transfer(source, Keypoints(driving.value + shift, driving.jacobian),
                               Keypoints(initial.value + shift, initial.jacobian))
    assert torch.allclose(shifted_source.value, moved.value + shift, atol=1e-6)
    assert torch.allclose(shifted_driving.value, moved.value, atol=1e-6)
    assert not torch.allclose(moved.value, relative_keypoints(source, driving, initial).value, atol=1e-3)


def test_the_config_section_is_typed_and_needs_jacobians():
    params = _config(hidden_features=64, num_layers=2).model_params.point_transfer_params
    assert (params.hidden_features, params.num_layers) == (64, 2)
    with pytest.raises(ConfigError, match="hidden_size"):
        _config(hidden_size=64)
    with pytest.raises(ConfigError, match="num_layers"):
        _config(num_layers=0)
    data = copy.deepcopy(TINY_CONFIG)
    data["model_params"]["common_params"]["estimate_jacobian"] = False
    data["model_params"]["point_transfer_params"] = {}
    with pytest.raises(ConfigError, match="estimate_jacobian"):
        FommConfig.from_dict(data)


def test_a_model_with_a_transfer_offers_learned_motion_and_uses_it_by_default():
    with_transfer, without = _model(), FommModel(FommConfig.from_dict(TINY_CONFIG))
    assert with_transfer.motion_modes() == ("relative", "absolute", "learned")
    assert with_transfer.default_motion().mode == "learned" and with_transfer.default_motion().relative
    assert without.point_transfer is None and without.motion_modes() == ("relative", "absolute")
    assert without.default_motion().mode == "relative"
    kp = _keypoints(3, 4, seed=1)
    with pytest.raises(ConfigError, match="no learned point transfer.*learned_transfer.py"):
        without.transfer(kp[:1], kp, kp[:1], MotionSettings("learned"))
    with pytest.raises(UserError, match="no learned point transfer"):
        Animator(without, motion="learned")
    with pytest.raises(ConfigError, match="no AVD network"):
        with_transfer.transfer(kp[:1], kp, kp[:1], MotionSettings("avd"))


def test_learned_motion_through_the_model_is_relative_until_the_transfer_corrects_it():
    source, driving = torch.rand(1, 3, 32, 32), torch.rand(3, 3, 32, 32)
    frames = {nudge: {mode: Animator(_model(nudge=nudge), motion=mode).animate(source, driving)
                      for mode in ("relative", "learned")} for nudge in (0.0, 0.3)}
    assert torch.equal(frames[0.0]["learned"], frames[0.0]["relative"])
    assert torch.equal(frames[0.3]["relative"], frames[0.0]["relative"])
    assert not torch.equal(frames[0.3]["learned"], frames[0.3]["relative"])


def test_tpsmm_and_mraa_models_refuse_learned_motion_by_name():
    from tests.tpsmm_helpers import tiny_config as tiny_tpsmm

    model = fomm.models.build_model(tiny_tpsmm())
    assert "learned" not in model.motion_modes()
    with pytest.raises(UserError, match="no learned point transfer"):
        Animator(model, motion="learned")


def test_the_transfer_goes_through_a_checkpoint_and_out_of_one(tmp_path):
    model = _model(seed=3, nudge=0.01, hidden_features=32, num_layers=2)
    path = fomm.save_checkpoint(tmp_path / "with.pt", model)
    loaded = fomm.load_checkpoint(path)
    assert loaded.config.model_params.point_transfer_params.hidden_features == 32
    assert loaded.built_networks() == ("generator", "kp_detector", "discriminator", "point_transfer")
    for name, tensor in model.point_transfer.state_dict().items():
        assert torch.equal(loaded.point_transfer.state_dict()[name], tensor)

    # A checkpoint whose config names a transfer it has no weights for goes without one (not random weights).
    saved = torch.load(path, weights_only=True)
    del saved["point_transfer"]
    torch.save(saved, tmp_path / "without-weights.pt")
    bare = fomm.load_checkpoint(tmp_path / "without-weights.pt")
    assert bare.point_transfer is None and bare.default_motion().mode == "relative"

    # Weights without the config section: named, not dropped.
    saved = torch.load(path, weights_only=True)
    del saved["config"]["model_params"]["point_transfer_params"]
    torch.save(saved, tmp_path / "without-config.pt")
    with pytest.raises(CheckpointError, match="point_transfer"):
        fomm.load_checkpoint(tmp_path / "without-config.pt")


def test_fomm_animate_runs_the_learned_transfer_by_default_and_relative_when_asked(tmp_path):
    data = copy.deepcopy(TINY_CONFIG)
    data["dataset_params"]["frame_shape"] = [64, 64, 3]
    data["model_params"]["point_transfer_params"] = {"hidden_features": 16, "num_layers": 1}
    torch.manual_seed(0)
    model = FommModel(FommConfig.from_dict(data))
    with torch.no_grad():
        model.point_transfer.correction.bias.fill_(0.3)
    checkpoint = fomm.save_checkpoint(tmp_path / "model.pt", model)
    results = {}
    for name, options in (("default", ()), ("learned", ("--motion", "learned")), ("relative", ("--relative",))):
        results[name] = tmp_path / f"{name}.mp4"
        finished = run_fomm("animate", "--checkpoint", str(checkpoint), "--source", str(BUNDLED_SOURCE),
                            "--driving", str(BUNDLED_DRIVING), "--out", str(results[name]), "--precision", "fp32",
                            "--backend", "torch", *options)
        assert finished.returncode == 0, finished.stderr
    frames = {name: read_video(path) for name, path in results.items()}
    assert len(frames["default"]) == len(read_video(BUNDLED_DRIVING))
    assert (frames["default"] == frames["learned"]).all()
    assert (frames["default"] != frames["relative"]).any()


def test_fomm_animate_names_the_missing_transfer(tmp_path):
    finished = run_fomm("animate", "--source", str(BUNDLED_SOURCE), "--driving", str(BUNDLED_DRIVING),
                        "--checkpoint", str(fomm.save_checkpoint(tmp_path / "plain.pt",
                                                                 FommModel(FommConfig.from_dict(TINY_CONFIG)))),
                        "--out", str(tmp_path / "out.mp4"), "--motion", "learned")
    assert finished.returncode == 2 and "no learned point transfer" in finished.stderr and "Traceback" not in finished.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_training_carries_the_transfer_through_unchanged(tmp_path):
    """``fomm train`` updates the networks its plan trains; the point transfer is not one of them,
    and the checkpoint it writes still carries it."""
    from fomm.data.synthetic.writer import make_dataset
    from tests.train_helpers import train_briefly

    root = make_dataset("sprites", tmp_path / "data", videos=4, frames=4, size=32, seed=0, workers=1).out
    config = _config(hidden_features=16, num_layers=1)
    torch.manual_seed(0)
    start = FommModel(config)
    with torch.no_grad():
        start.point_transfer.correction.bias.fill_(0.1)
    written = train_briefly(config, root, tmp_path, steps=2, checkpoint=fomm.save_checkpoint(tmp_path / "s.pt", start))
    for name, tensor in start.point_transfer.state_dict().items():
        assert torch.equal(written["point_transfer"][name], tensor)
    assert any(not torch.equal(written["generator"][name], tensor) for name, tensor in start.generator.state_dict().items())


def test_training_on_cross_pairs_renders_the_transfer_as_animation_does():
    """In the objective, a cross sample (its initial frame is another video's) is rendered from the
    transfer's keypoints, as `fomm animate` renders it; a plain sample (initial is the source) from
    the driving keypoints, as before."""
    from fomm.models.fomm.objective import GeneratorFullModel

    model = _model(nudge=0.1)
    objective = GeneratorFullModel(model.kp_detector, model.generator, model.discriminator, model.config.train_params,
                                   3, point_transfer=model.point_transfer)
    generator = torch.Generator().manual_seed(0)
    source, driving = torch.rand(2, 3, 32, 32, generator=generator), torch.rand(2, 3, 32, 32, generator=generator)
    initial = torch.stack([source[0], torch.rand(3, 32, 32, generator=generator)])
    with torch.no_grad():
        kp_source, kp_driving, kp_initial = (model.kp_detector(images) for images in (source, driving, initial))
        rendered = objective._relative(kp_source, kp_driving, initial, source)
        learned = model.point_transfer(kp_source, kp_driving, kp_initial)
    assert torch.allclose(rendered.value[0], kp_driving.value[0], atol=1e-5)
    assert not torch.allclose(rendered.value[0], learned.value[0], atol=1e-2)
    assert torch.equal(rendered.value[1], learned.value[1]) and torch.equal(rendered.jacobian[1], learned.jacobian[1])
