"""scripts/transplant_motion.py: a new generator shape that keeps a trained model's motion."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import torch
import yaml

import fomm
from fomm.config import FommConfig

from .train_helpers import TINY_CONFIG

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "transplant_motion.py"


def write_config(path: Path, generator: dict | None = None, common: dict | None = None) -> Path:
    """TINY_CONFIG with ``model_params.generator_params`` / ``common_params`` updated, as YAML."""
    data = copy.deepcopy(TINY_CONFIG)
    data["model_params"]["generator_params"].update(generator or {})
    data["model_params"]["common_params"].update(common or {})
    path.write_text(yaml.safe_dump(FommConfig.from_dict(data).to_dict()))
    return path


def transplant(tmp_path: Path, checkpoint: Path, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--checkpoint", str(checkpoint), "--config", str(config),
                           "--out", str(tmp_path / "init.pth.tar")], capture_output=True, text=True)


def test_motion_networks_move_to_a_full_resolution_generator(tmp_path):
    trained_config = write_config(tmp_path / "trained.yaml")
    torch.manual_seed(1)
    trained = fomm.build_model(fomm.load_config(trained_config))
    fomm.save_checkpoint(tmp_path / "trained.pt", trained)
    new_config = write_config(tmp_path / "fullres.yaml", generator={"num_down_blocks": 0, "block_expansion": 16})

    result = transplant(tmp_path, tmp_path / "trained.pt", new_config)
    assert result.returncode == 0, result.stderr

    data = fomm.read_checkpoint(tmp_path / "init.pth.tar", new_config)
    assert data.is_original  # so that `fomm train --checkpoint` starts a new schedule from it
    model = fomm.load_checkpoint(tmp_path / "init.pth.tar", new_config)
    for name, value in trained.kp_detector.state_dict().items():
        assert torch.equal(model.kp_detector.state_dict()[name], value), name
    motion = model.generator.dense_motion_network.state_dict()
    for name, value in trained.generator.dense_motion_network.state_dict().items():
        assert torch.equal(motion[name], value), name
    assert len(model.generator.down_blocks) == 0
    assert model.generator.first.conv.weight.shape[0] == 16


def test_a_config_with_other_motion_networks_is_refused(tmp_path):
    trained_config = write_config(tmp_path / "trained.yaml")
    fomm.save_checkpoint(tmp_path / "trained.pt", fomm.build_model(fomm.load_config(trained_config)))
    other_config = write_config(tmp_path / "other.yaml", common={"num_kp": 6})

    result = transplant(tmp_path, tmp_path / "trained.pt", other_config)
    assert result.returncode != 0
    assert "does not fit" in result.stderr and "num_kp" in result.stderr
    assert not (tmp_path / "init.pth.tar").exists()
