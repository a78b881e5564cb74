"""Config files: the original layout loads; mistakes name the key and the file."""

from __future__ import annotations

import pytest
import yaml

import fomm
from fomm.config import ConfigError

from .conftest import CONFIGS


def test_every_shipped_config_loads():
    names = sorted(path.stem for path in CONFIGS.glob("*.yaml"))
    assert {"vox-256", "vox-adv-256", "taichi-256", "taichi-adv-256", "bair-256", "fashion-256",
            "mgif-256", "nemo-256"} <= set(names)
    for name in names:
        fomm.load_config(CONFIGS / f"{name}.yaml")


def test_original_fixture_config_loads_unchanged(reference_dir):
    config = fomm.load_config(reference_dir / "config.yaml")
    assert config.model_params.common_params.num_kp == 10
    assert config.dataset_params.frame_shape == (64, 64, 3)
    assert config.train_params.loss_weights.feature_matching == [10, 10, 10, 10]
    assert config.model_params.generator_params.dense_motion_params.scale_factor == 0.5


def write_variant(tmp_path, edit):
    data = yaml.safe_load((CONFIGS / "vox-256.yaml").read_text())
    edit(data)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_misspelled_key_names_key_and_file(tmp_path):
    def misspell(data):
        data["model_params"]["kp_detector_params"]["temprature"] = 0.1
    path = write_variant(tmp_path, misspell)
    with pytest.raises(ConfigError) as error:
        fomm.load_config(path)
    assert "model_params.kp_detector_params.temprature" in str(error.value)
    assert str(path) in str(error.value)


def test_wrong_type_names_key(tmp_path):
    def wrong(data):
        data["train_params"]["batch_size"] = "forty"
    with pytest.raises(ConfigError, match="train_params.batch_size"):
        fomm.load_config(write_variant(tmp_path, wrong))


def test_missing_required_key(tmp_path):
    def drop(data):
        del data["model_params"]["common_params"]["num_kp"]
    with pytest.raises(ConfigError, match="missing key 'model_params.common_params.num_kp'"):
        fomm.load_config(write_variant(tmp_path, drop))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        fomm.load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_params: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        fomm.load_config(bad)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(128, 256)))  # not UTF-8: was a UnicodeDecodeError traceback
    with pytest.raises(ConfigError, match="binary.yaml: not a YAML config"):
        fomm.load_config(binary)


def test_round_trip_through_dict():
    config = fomm.load_config(CONFIGS / "mgif-256.yaml")
    assert fomm.FommConfig.from_dict(config.to_dict()) == config


def test_occlusion_blend_needs_an_occlusion_map(reference_dir, tmp_path):
    text = (reference_dir / "config.yaml").read_text()
    assert "estimate_occlusion_map: true" in text
    path = tmp_path / "no-occlusion.yaml"
    path.write_text(text.replace("estimate_occlusion_map: true",
                                 "estimate_occlusion_map: false\n    output_blend: occlusion"))
    with pytest.raises(ConfigError, match="output_blend 'occlusion'.*estimate_occlusion_map"):
        fomm.load_config(path)
    path.write_text(text.replace("estimate_occlusion_map: true",
                                 "estimate_occlusion_map: true\n    output_blend: occlusion"))
    assert fomm.load_config(path).model_params.generator_params.output_blend == "occlusion"
