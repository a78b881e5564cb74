"""Every family trains through the commands a user runs: ``fomm train`` on real video files, a
resumed run continuing exactly where it stopped, ``fomm train-avd`` for the AVD stage (TPSMM and
MRAA), resumable too, and the result animating with ``--motion avd``. Small configs (the reference
fixtures' architectures at 64x64, the pixel pyramid as the perceptual loss: no VGG19 here)."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml

import fomm
from fomm.cli import main
from fomm.models.registry import load_config

from .reference_fixtures import fixture


def small_config(family: str, dataset, tmp_path):
    """The family's reference architecture with a short schedule on ``dataset``."""
    data = copy.deepcopy(load_config(fixture(family, "config.yaml")).to_dict())
    data["dataset_params"].update(root_dir=str(dataset), frame_shape=[64, 64, 3], id_sampling=False)
    train = data["train_params"]
    train.update(num_epochs=4, num_repeats=1, batch_size=2, epoch_milestones=[3], checkpoint_freq=1,
                 dataloader_workers=0, perceptual_backbone="pixel")
    if family == "tpsmm":
        train.update(bg_start=1, dropout_epoch=2, dropout_inc_epoch=1)
    data["train_avd_params"].update(num_epochs=2, num_repeats=1, batch_size=2, checkpoint_freq=1,
                                    dataloader_workers=0)
    path = tmp_path / f"{family}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("family", ["tpsmm", "mraa"])
def test_train_resume_train_avd_and_animate_with_it(family, sprites_64, tmp_path, capsys):
    config = small_config(family, sprites_64, tmp_path)
    run = tmp_path / "run"
    common = ["--threads", "1", "--no-progress", "--device", "cpu"]
    assert main(["train", "--config", str(config), "--log-dir", str(run), "--max-steps", "3", *common]) == 0
    first = fomm.read_checkpoint(run / "checkpoint.pth.tar")
    assert first.family.name == family and first.training_state["global_step"] == 3
    # Resumed from its checkpoint, the run continues its step count and its schedule.
    assert main(["train", "--config", str(config), "--checkpoint", str(run / "checkpoint.pth.tar"),
                 "--max-steps", "2", *common]) == 0
    resumed = fomm.read_checkpoint(run / "checkpoint.pth.tar")
    assert resumed.training_state["global_step"] == 5 and resumed.training_state["stage"] == "motion"
    model = fomm.load_checkpoint(run / "checkpoint.pth.tar")
    before_avd = {key: value.clone() for key, value in model.avd_network.state_dict().items()}

    # The AVD stage: only the AVD network moves.
    avd_run = tmp_path / "avd"
    assert main(["train-avd", "--checkpoint", str(run / "checkpoint.pth.tar"), "--log-dir", str(avd_run),
                 "--max-steps", "2", *common]) == 0
    assert main(["train-avd", "--checkpoint", str(avd_run / "checkpoint.pth.tar"), "--max-steps", "1", *common]) == 0
    avd = fomm.read_checkpoint(avd_run / "checkpoint.pth.tar")
    assert avd.training_state["stage"] == "avd" and avd.training_state["global_step"] == 3
    trained = fomm.load_checkpoint(avd_run / "checkpoint.pth.tar")
    assert any(not torch.equal(before_avd[key], value) for key, value in trained.avd_network.state_dict().items())
    motion_networks = [name for name in trained.built_networks() if name not in ("avd_network",)]
    for name in motion_networks:
        for key, value in getattr(trained, name).state_dict().items():
            assert torch.equal(value, getattr(model, name).state_dict()[key]), f"{name}.{key} moved in the AVD stage"

    out = tmp_path / "avd.mp4"
    assert main(["animate", "--checkpoint", str(avd_run / "checkpoint.pth.tar"), "--motion", "avd",
                 "--source", str(next((sprites_64 / "test").iterdir())), "--out", str(out),
                 "--precision", "fp32", "--backend", "torch"]) == 0
    assert out.is_file() and "torch fp32" in capsys.readouterr().out


def test_a_fomm_model_has_no_avd_stage(sprites_64, tmp_path, capsys):
    checkpoint = fomm.save_checkpoint(tmp_path / "fomm.pth.tar", fomm.load_checkpoint(fomm.assets.BUNDLED_CHECKPOINT))
    assert main(["train-avd", "--checkpoint", str(checkpoint), "--log-dir", str(tmp_path / "run")]) == 2
    assert "trains in the stage(s) motion, not 'avd'" in capsys.readouterr().err
