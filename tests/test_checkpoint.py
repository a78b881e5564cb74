"""Checkpoints: original layouts (zip, legacy, old spectral norm), ours, atomic saves, bad files."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import fomm
from fomm.checkpoint import CheckpointError
from fomm.models.blocks import ImagePyramid


@pytest.fixture(scope="module")
def original(reference_dir):
    return reference_dir / "checkpoint.pth.tar", reference_dir / "config.yaml"


def outputs(model, reference_io):
    with torch.no_grad():
        kp_source = model.kp_detector(reference_io["source"])
        kp_driving = model.kp_detector(reference_io["driving"])
        generated = model.generator(reference_io["source"], kp_source=kp_source, kp_driving=kp_driving)
        disc = model.discriminator(ImagePyramid([1], 3)(reference_io["driving"]))
    return torch.cat([kp_driving.value.flatten(), generated.prediction.flatten(),
                      disc.prediction_maps["1"].flatten()])


def test_original_checkpoint_needs_its_config(original):
    path, _ = original
    with pytest.raises(CheckpointError, match="no config inside"):
        fomm.load_checkpoint(path)


def test_original_checkpoint_keeps_epoch_and_optimizer_states(original):
    data = fomm.read_checkpoint(*original)
    assert data.is_original and data.epoch == 1
    assert set(data.training_state) >= {"optimizer_generator", "optimizer_discriminator", "optimizer_kp_detector"}
    assert fomm.load_checkpoint(*original).epoch == 1


def test_legacy_pre_1_6_container_loads_identically(original, reference_io, tmp_path):
    path, config = original
    raw = torch.load(path, weights_only=True)
    legacy = tmp_path / "legacy.pth.tar"
    torch.save(raw, legacy, _use_new_zipfile_serialization=False)
    assert not __import__("zipfile").is_zipfile(legacy)
    expected = outputs(fomm.load_checkpoint(path, config=config), reference_io)
    assert torch.equal(outputs(fomm.load_checkpoint(legacy, config=config), reference_io), expected)


def test_pre_1_0_spectral_norm_names_are_upgraded(original, reference_io, tmp_path):
    """Old torch stored the normalised `weight` and no `weight_v`; the upgrade solves for v."""
    path, config = original
    raw = torch.load(path, weights_only=True)
    old = {}
    for key, value in raw["discriminator"].items():
        if key.endswith(".weight_v"):
            continue
        old[key] = value
        if key.endswith(".weight_orig"):
            prefix = key[: -len("_orig")]
            matrix = value.reshape(value.shape[0], -1)
            sigma = torch.dot(raw["discriminator"][prefix + "_u"], matrix @ raw["discriminator"][prefix + "_v"])
            old[prefix] = value / sigma
    raw["discriminator"] = old
    converted = tmp_path / "old-sn.pth.tar"
    torch.save(raw, converted)
    expected = outputs(fomm.load_checkpoint(path, config=config), reference_io)
    got = outputs(fomm.load_checkpoint(converted, config=config), reference_io)
    assert (got - expected).abs().max().item() < 1e-5


def test_own_format_round_trips_without_config(original, reference_io, tmp_path):
    model = fomm.load_checkpoint(*original)
    saved = fomm.save_checkpoint(tmp_path / "ours.pt", model, {"note": "hello", "step": torch.tensor(3)})
    loaded = fomm.load_checkpoint(saved)
    assert torch.equal(outputs(loaded, reference_io), outputs(model, reference_io))
    assert loaded.epoch == 1 and loaded.config == model.config
    data = fomm.read_checkpoint(saved)
    assert not data.is_original and data.training_state["note"] == "hello"


def test_failed_save_keeps_previous_checkpoint(original, reference_io, tmp_path):
    model = fomm.load_checkpoint(*original)
    target = fomm.save_checkpoint(tmp_path / "ckpt.pt", model)
    before = target.read_bytes()
    with pytest.raises(Exception):
        # A lambda cannot be pickled: torch.save fails after writing part of the file.
        fomm.save_checkpoint(target, model, {"unpicklable": lambda: None})
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"], "temporary file left behind"
    fomm.load_checkpoint(target)


def test_killed_writer_process_leaves_last_good_checkpoint(tmp_path):
    """A real process killed (SIGKILL) while saving: the target is still the last complete save."""
    script = textwrap.dedent(f"""
        import sys, fomm
        model = fomm.build_model(fomm.load_config({str(Path(fomm.__file__).parent / 'configs' / 'vox-256.yaml')!r}))
        fomm.save_checkpoint({str(tmp_path / 'ckpt.pt')!r}, model)
        print('saved', flush=True)
        while True:
            model.epoch += 1
            fomm.save_checkpoint({str(tmp_path / 'ckpt.pt')!r}, model)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "saved"
        time.sleep(0.7)  # mid-way through a ~250 MB write
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()  # waits, and closes its pipe
    model = fomm.load_checkpoint(tmp_path / "ckpt.pt")
    assert model.epoch >= 0


def test_truncated_checkpoint_is_a_clear_error(original, tmp_path):
    path, config = original
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        fomm.load_checkpoint(truncated, config=config)


def test_garbage_and_missing_files(tmp_path):
    for seed in range(20):  # random bytes break the unpickler in many different ways
        garbage = tmp_path / f"garbage{seed}.pth.tar"
        garbage.write_bytes(random.Random(seed).randbytes(4096))
        with pytest.raises(CheckpointError, match=f"garbage{seed}.pth.tar"):
            fomm.load_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="not found"):
        fomm.load_checkpoint(tmp_path / "nope.pth.tar")
    not_fomm = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, not_fomm)
    with pytest.raises(CheckpointError, match="not a checkpoint of a known model family"):
        fomm.load_checkpoint(not_fomm)


def test_mismatched_config_names_keys_and_shapes(original, reference_dir):
    path, _ = original
    with pytest.raises(CheckpointError) as error:
        fomm.load_checkpoint(path, config=Path(fomm.__file__).parent / "configs" / "vox-256.yaml")
    message = str(error.value)
    assert "do not fit" in message and "'generator'" in message
    assert "shape of 'dense_motion_network.hourglass.encoder.down_blocks.0.conv.weight': checkpoint [16, 44, 3, 3], model [128, 44, 3, 3]" in message


def test_pickled_code_is_refused(tmp_path):
    evil = tmp_path / "evil.pth.tar"
    torch.save({"generator": {}, "kp_detector": {}, "payload": Path("x")}, evil)
    with pytest.raises(CheckpointError, match="refused: the file holds Python objects") as error:
        fomm.load_checkpoint(evil)
    assert "pathlib.PosixPath" in str(error.value) and "weights_only=False" not in str(error.value)


@pytest.mark.parametrize("content", [b"", b"hello world\n", bytes(range(256)) * 20])
def test_a_file_that_is_not_a_checkpoint_says_so_in_one_line(tmp_path, content):
    path = tmp_path / "garbage.pth.tar"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a checkpoint") as error:
        fomm.load_checkpoint(path)
    assert "\n" not in str(error.value) and "weights_only=False" not in str(error.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_loads_onto_cuda_and_runs(original, reference_io):
    model = fomm.load_checkpoint(*original, device="cuda")
    kp = model.kp_detector(reference_io["source"].cuda())
    assert kp.value.device.type == "cuda"
    assert (kp.value.cpu() - reference_io["kp_source.value"]).abs().max() < 1e-4


def test_a_device_this_machine_lacks_is_one_user_error_from_the_api():
    """The docs' `device="cuda"` on a CPU machine: a DeviceError naming it, not torch's assert."""
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from fomm.assets import BUNDLED_CHECKPOINT

    with pytest.raises(fomm.DeviceError, match="device 'cuda' asked for, but CUDA is not available"):
        fomm.load_checkpoint(BUNDLED_CHECKPOINT, device="cuda")
    with pytest.raises(fomm.DeviceError, match="cuda:3"):
        fomm.build_model(fomm.load_config("sprites-64"), device="cuda:3")
