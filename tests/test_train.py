"""The training loop: learning, exact resume, DDP on CPU, synchronised batch norm, NaN and
Ctrl-C handling, fine-tuning from an original checkpoint, the command line."""

from __future__ import annotations

import argparse
import hashlib
import os
import threading

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import yaml

from fomm.errors import ConfigError
from fomm.checkpoint import load_checkpoint, read_checkpoint
from fomm.models import build_model
from fomm.cli import train as train_command
from fomm.training import CHECKPOINT_NAME, NonFiniteLossError, Trainer
from tests.train_helpers import (
    TINY_CONFIG,
    MovingBlobs,
    NanBlobs,
    NoisyBlobs,
    batchnorm_worker,
    ddp_train_worker,
    free_port,
    tiny_config,
)

GAN = {"generator_gan": 1, "feature_matching": [1, 1]}


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _states(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {f"{name}.{key}": value.detach().clone()
            for name in ("kp_detector", "generator", "discriminator")
            for key, value in getattr(trainer.model, name).state_dict().items()}


def test_a_few_steps_reduce_the_loss(tmp_path):
    trainer = Trainer(tiny_config(num_epochs=3), tmp_path, device="cpu", dataset=MovingBlobs(8), progress=False)
    result = trainer.train()
    assert result.epoch == 3 and result.global_step == 12 and not result.interrupted
    perceptual = [step["perceptual"] for step in result.history]
    assert sum(perceptual[-3:]) / 3 < 0.7 * sum(perceptual[:3]) / 3
    assert set(result.history[0]) == {"perceptual", "equivariance_value", "equivariance_jacobian"}
    # Logs: the checkpoint, a config copy, TensorBoard events and a visualisation per checkpoint.
    assert (tmp_path / CHECKPOINT_NAME).is_file() and (tmp_path / "config.yaml").is_file()
    assert list(tmp_path.glob("events.out.tfevents.*"))
    assert len(list((tmp_path / "train-vis").glob("*.png"))) == 3
    model = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert model.epoch == 3


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    """6 steps in one go == 3 steps, checkpoint, fresh process state, 3 more (crossing an epoch
    boundary and an LR milestone, with the GAN on and dataset noise from its own generator)."""
    config = tiny_config(loss_weights=GAN)
    whole = Trainer(config, tmp_path / "whole", device="cpu", dataset=NoisyBlobs(8), max_steps=6, progress=False)
    whole_result = whole.train()
    assert (whole_result.epoch, whole_result.step_in_epoch) == (1, 2)

    first = Trainer(config, tmp_path / "parts", device="cpu", dataset=NoisyBlobs(8), max_steps=3, progress=False)
    first.train()
    torch.manual_seed(12345)  # whatever the process did in between must not matter
    second = Trainer(config, tmp_path / "parts", device="cpu", dataset=NoisyBlobs(8),
                     checkpoint=tmp_path / "parts" / CHECKPOINT_NAME, max_steps=3, progress=False)
    assert (second.start_epoch, second.start_step_in_epoch) == (0, 3)
    second_result = second.train()
    assert second_result.global_step == 6

    expected, actual = _states(whole), _states(second)
    for key in expected:
        assert torch.allclose(expected[key].float(), actual[key].float(), atol=1e-6, rtol=0), key
    for name in ("generator", "kp_detector", "discriminator"):
        assert second.optimizers[f"optimizer_{name}"].param_groups[0]["lr"] == whole.optimizers[f"optimizer_{name}"].param_groups[0]["lr"]
    assert whole.optimizers["optimizer_generator"].param_groups[0]["lr"] == pytest.approx(2e-4)  # after milestone 1
    assert [round(h["perceptual"], 6) for h in whole_result.history[3:]] == \
        [round(h["perceptual"], 6) for h in second_result.history]


def test_ddp_on_two_cpu_processes_trains_and_writes_one_checkpoint(tmp_path):
    log_dir, out_dir = tmp_path / "log", tmp_path / "out"
    out_dir.mkdir()
    mp.spawn(ddp_train_worker, args=(2, free_port(), str(log_dir), str(out_dir)), nprocs=2, join=True)
    assert [p.name for p in log_dir.glob("*.pth.tar")] == [CHECKPOINT_NAME]
    ranks = [torch.load(out_dir / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert all(r["world_size"] == 2 and r["global_step"] == 2 for r in ranks)
    # Same weights and (synchronised) batch-norm statistics on both ranks, and they trained.
    for name, state in ranks[0]["states"].items():
        for key, value in state.items():
            assert torch.allclose(value.float(), ranks[1]["states"][name][key].float(), atol=1e-6), f"{name}.{key}"
    fresh = build_model(tiny_config())
    moved = fresh.generator.state_dict()["final.weight"] - ranks[0]["states"]["generator"]["final.weight"]
    assert moved.abs().max() > 0
    # The checkpoint loads strictly into the plain (non-distributed) model.
    model = load_checkpoint(log_dir / CHECKPOINT_NAME)
    data = read_checkpoint(log_dir / CHECKPOINT_NAME)
    assert data.training_state["world_size"] == 2 and len(data.training_state["rng_states"]) == 2
    assert torch.equal(model.kp_detector.state_dict()["predictor.encoder.down_blocks.0.norm.running_mean"],
                       ranks[0]["states"]["kp_detector"]["predictor.encoder.down_blocks.0.norm.running_mean"])


def test_all_reduce_batchnorm_matches_one_process_over_the_whole_batch(tmp_path):
    torch.manual_seed(0)
    inputs = torch.randn(6, 3, 5, 5) * 2 + 0.5
    weights = torch.randn(6, 3, 5, 5)
    mp.spawn(batchnorm_worker, args=(2, free_port(), inputs, weights, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"bn{r}.pt", weights_only=True) for r in range(2)]

    reference = torch.nn.BatchNorm2d(3, momentum=0.3)
    x = inputs.clone().requires_grad_(True)
    for _ in range(2):
        out = reference(x)
    (out * weights).sum().backward()

    for key in ("running_mean", "running_var"):
        assert torch.equal(ranks[0][key], ranks[1][key]), key  # identical on both ranks
        assert torch.allclose(ranks[0][key], getattr(reference, key), atol=1e-5), key
    assert int(ranks[0]["batches"]) == 2
    assert torch.allclose(torch.cat([ranks[0]["out"], ranks[1]["out"]]), out.detach(), atol=1e-5)
    # Gradients through the shared statistics: each rank's input gradient is that of the whole batch.
    assert torch.allclose(torch.cat([ranks[0]["input_grad"], ranks[1]["input_grad"]]), x.grad, atol=1e-5)
    assert torch.allclose(ranks[0]["weight_grad"] + ranks[1]["weight_grad"], reference.weight.grad, atol=1e-4)


def test_nan_loss_stops_with_the_term_and_step_and_keeps_the_checkpoint(tmp_path):
    Trainer(tiny_config(), tmp_path, device="cpu", dataset=MovingBlobs(8), max_steps=4, progress=False).train()
    checkpoint = tmp_path / CHECKPOINT_NAME
    before = _digest(checkpoint)
    trainer = Trainer(tiny_config(), tmp_path, device="cpu", dataset=NanBlobs(8), checkpoint=checkpoint,
                      progress=False)
    with pytest.raises(NonFiniteLossError) as error:
        trainer.train()
    assert error.value.term == "perceptual" and error.value.step == 4
    assert "'perceptual'" in str(error.value) and "step 4" in str(error.value) and "kept" in str(error.value)
    assert _digest(checkpoint) == before


def test_ctrl_c_writes_no_checkpoint_and_keeps_the_last_one(tmp_path, monkeypatch):
    Trainer(tiny_config(), tmp_path, device="cpu", dataset=MovingBlobs(8), max_steps=4, progress=False).train()
    checkpoint = tmp_path / CHECKPOINT_NAME
    before = _digest(checkpoint)
    trainer = Trainer(tiny_config(), tmp_path, device="cpu", dataset=MovingBlobs(8), checkpoint=checkpoint,
                      progress=False)
    real_step, calls = trainer.train_step, []

    def interrupted_step(batch):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_step(batch)

    monkeypatch.setattr(trainer, "train_step", interrupted_step)
    result = trainer.train()
    assert result.interrupted and result.steps_this_run == 2
    assert _digest(checkpoint) == before


def test_fine_tune_from_an_original_checkpoint(tmp_path):
    config = tiny_config(loss_weights=GAN)
    source = build_model(config)
    with torch.no_grad():
        source.generator.final.bias.fill_(0.25)
    optimizer = torch.optim.Adam(source.generator.parameters(), lr=1e-5, betas=(0.5, 0.999))
    for parameter in source.generator.parameters():
        parameter.grad = torch.ones_like(parameter)
    optimizer.step()
    original = {name: getattr(source, name).state_dict() for name in ("generator", "kp_detector", "discriminator")}
    original.update(optimizer_generator=optimizer.state_dict(), epoch=99)
    torch.save(original, tmp_path / "original.pth.tar")

    trainer = Trainer(config, tmp_path / "log", device="cpu", dataset=MovingBlobs(8),
                      checkpoint=tmp_path / "original.pth.tar", progress=False)
    assert trainer.start_epoch == 0
    assert torch.equal(trainer.model.generator.final.bias, source.generator.final.bias)
    adam = trainer.optimizers["optimizer_generator"]
    assert len(adam.state) == len(list(source.generator.parameters()))  # moments carried over
    assert adam.param_groups[0]["lr"] == config.train_params.lr_generator  # this config's rate
    assert len(trainer.optimizers["optimizer_kp_detector"].state) == 0  # absent from the file: fresh


def test_command_line_arguments_and_exit_status(tmp_path, monkeypatch):
    parser = argparse.ArgumentParser()
    train_command.add_arguments(parser)
    args = parser.parse_args(["--config", "c.yaml", "--max-steps", "2", "--seed", "5", "--device", "cpu"])
    assert (args.config, args.max_steps, args.seed, args.device, args.checkpoint) == ("c.yaml", 2, 5, "cpu", None)

    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(TINY_CONFIG))
    # The data layer is someone else's: stand in a tensor dataset for dataset_params here.
    monkeypatch.setattr(Trainer, "_build_dataset", lambda self: NanBlobs(4))
    args = parser.parse_args(["--config", str(config_path), "--log-dir", str(tmp_path / "log"),
                              "--device", "cpu", "--max-steps", "1", "--no-progress"])
    assert train_command.run(args) == 1  # NaN: a clear error, exit status 1
    monkeypatch.setattr(Trainer, "_build_dataset", lambda self: MovingBlobs(4))
    assert train_command.run(args) == 0
    assert (tmp_path / "log" / CHECKPOINT_NAME).is_file()


def _tiny_sprites(root) -> dict:
    from fomm.data.synthetic.writer import make_dataset

    make_dataset("sprites", root, videos=5, frames=6, size=32, seed=0, workers=1)
    data = yaml.safe_load(yaml.safe_dump(TINY_CONFIG))
    data["dataset_params"]["root_dir"] = str(root)
    return data


def test_trains_on_a_generated_sprites_dataset_and_resumes_its_sampling(tmp_path):
    """The real data path (FramesDataset + DatasetRepeater): its sampling generator is
    checkpointed, so a mid-epoch resume reproduces the uninterrupted run."""
    from fomm.config import FommConfig

    data = _tiny_sprites(tmp_path / "sprites")
    data["train_params"]["num_repeats"] = 2
    config = FommConfig.from_dict(data)
    whole = Trainer(config, tmp_path / "whole", device="cpu", max_steps=3, progress=False)
    assert whole.steps_per_epoch >= 3
    whole.train()
    Trainer(config, tmp_path / "parts", device="cpu", max_steps=1, progress=False).train()
    second = Trainer(config, tmp_path / "parts", device="cpu", checkpoint=tmp_path / "parts" / CHECKPOINT_NAME,
                     max_steps=2, progress=False)
    second.train()
    expected, actual = _states(whole), _states(second)
    for key in expected:
        assert torch.allclose(expected[key].float(), actual[key].float(), atol=1e-6, rtol=0), key


@pytest.mark.slow
def test_torchrun_two_processes_on_generated_sprites(tmp_path):
    import subprocess
    import sys

    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(_tiny_sprites(tmp_path / "sprites")))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(free_port()), "-m", "fomm.cli", "train", "--config", str(config_path), "--log-dir",
               str(tmp_path / "log"), "--device", "cpu", "--max-steps", "2", "--threads", "1", "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "effective batch size 2 x 2 = 4" in done.stderr
    assert [p.name for p in (tmp_path / "log").glob("*.pth.tar")] == [CHECKPOINT_NAME]
    assert load_checkpoint(tmp_path / "log" / CHECKPOINT_NAME) is not None


def test_flow_consistency_term_is_trained_when_weighted(tmp_path):
    from tests.train_helpers import FlowBlobs

    config = tiny_config(loss_weights={"flow_consistency": 5})
    result = Trainer(config, tmp_path, device="cpu", dataset=FlowBlobs(8), max_steps=2, progress=False).train()
    assert all("flow_consistency" in step and step["flow_consistency"] >= 0 for step in result.history)
    with pytest.raises(ConfigError, match="needs batches with 'flow'"):
        Trainer(config, tmp_path / "no-flow", device="cpu", dataset=MovingBlobs(8), max_steps=1,
                progress=False).train()


def test_cli_training_on_real_videos_skips_bad_ones_only_when_asked(tmp_path):
    """`fomm train` on a folder of real mp4s, one of them corrupt: an error naming the file, or
    with --skip-bad a warning and training goes on."""
    import subprocess
    import sys

    import yaml

    from fomm.data.video import write_video

    from .train_helpers import TINY_CONFIG

    data = tmp_path / "videos"
    for split in ("train", "test"):
        (data / split).mkdir(parents=True)
        for index in range(2):
            frames = (np.random.default_rng(index).random((4, 32, 32, 3)) * 255).astype(np.uint8)
            write_video(data / split / f"clip{index}.mp4", frames, fps=10)
    (data / "train" / "broken.mp4").write_bytes(b"not a video at all")
    config = dict(TINY_CONFIG)
    config["dataset_params"] = {"root_dir": str(data), "frame_shape": [32, 32, 3]}
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "fomm.cli", "train", "--config", str(config_path), "--log-dir",
               str(tmp_path / "run"), "--max-steps", "1", "--threads", "1", "--no-progress"]

    failed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert failed.returncode == 2 and "broken.mp4" in failed.stderr and "Traceback" not in failed.stderr
    assert not (tmp_path / "run" / "checkpoint.pth.tar").exists()

    skipped = subprocess.run(command + ["--skip-bad"], capture_output=True, text=True, timeout=300)
    assert skipped.returncode == 0, skipped.stderr[-2000:]
    assert "broken.mp4" in skipped.stderr
    assert (tmp_path / "run" / "checkpoint.pth.tar").is_file()


def test_cli_fine_tunes_the_original_reference_checkpoint_with_its_config(tmp_path):
    """`fomm train --config <the original's config> --checkpoint <its .pth.tar>`: the checkpoint the
    original implementation wrote is fine-tuned (its perceptual weights are all 0: no VGG19), and
    the checkpoint written loads back, holding weights that moved a little from the original's."""
    import subprocess
    import sys

    from fomm.data.synthetic.writer import make_dataset
    from tests.train_helpers import reference_fixture

    original_path, config_source = reference_fixture("checkpoint.pth.tar"), reference_fixture("config.yaml")
    config = yaml.safe_load(config_source.read_text())
    make_dataset("sprites", tmp_path / "sprites", videos=4, frames=4, size=64, seed=0, workers=1)
    config["dataset_params"]["root_dir"] = str(tmp_path / "sprites")
    config_path = tmp_path / "reference.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log_dir = tmp_path / "fine-tuned"
    command = [sys.executable, "-m", "fomm.cli", "train", "--config", str(config_path), "--checkpoint",
               str(original_path), "--log-dir", str(log_dir), "--device", "cpu", "--max-steps", "2",
               "--threads", "1", "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "fine-tuning from the original checkpoint" in done.stderr

    data = read_checkpoint(log_dir / CHECKPOINT_NAME)
    assert not data.is_original and data.training_state["global_step"] == 2
    model = load_checkpoint(log_dir / CHECKPOINT_NAME)  # strict load with the embedded config
    original = load_checkpoint(original_path, config=config_source)
    fresh = build_model(original.config)
    for name in ("kp_detector", "generator", "discriminator"):
        tuned = dict(getattr(model, name).named_parameters())
        for key, value in getattr(original, name).named_parameters():
            step = (tuned[key] - value).abs().max().item()
            assert step < 0.01, f"{name}.{key} moved {step}: not fine-tuned from the original"
        moved = max((tuned[key] - value).abs().max().item() for key, value in getattr(original, name).named_parameters())
        assert moved > 0, f"{name} did not train"
    # A fresh model is far from the original: the closeness above is evidence of the fine-tuning.
    distance = max((a - b).abs().max().item() for a, b in zip(fresh.generator.parameters(),
                                                              original.generator.parameters()))
    assert distance > 0.05


def test_cli_config_by_packaged_name_and_output_checks(tmp_path, monkeypatch, capsys):
    from fomm.cli import main

    monkeypatch.chdir(tmp_path)
    # The packaged sprites-64 config is found by name; its dataset (data/sprites-64) is not here.
    assert main(["train", "--config", "sprites-64", "--device", "cpu", "--max-steps", "1", "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("fomm train: error:") and "data/sprites-64: dataset folder not found" in error, error
    assert train_command.default_log_dir("sprites-64", None) == train_command.DEFAULT_LOG_ROOT / "sprites-64"
    assert train_command.default_log_dir("configs/vox-256.yaml", None).name == "vox-256"

    (tmp_path / "taken").write_text("a file")
    assert main(["train", "--config", "sprites-64", "--log-dir", "taken/run", "--max-steps", "1"]) == 2
    error = capsys.readouterr().err
    assert "--log-dir taken/run" in error and "not a folder" in error, error
    with pytest.raises(SystemExit):
        main(["train", "--config", "sprites-64", "--threads", "0"])
    assert "must be at least 1" in capsys.readouterr().err


class HeldBlobs(MovingBlobs):
    """:class:`MovingBlobs` whose first item waits until ``release`` is set: a run reading it is
    provably still running (and holding its log folder) while the test does something else."""

    def __init__(self, release: threading.Event, num_items: int = 8) -> None:
        super().__init__(num_items)
        self.release = release
        self.reading = threading.Event()

    def __getitem__(self, index: int) -> dict:
        self.reading.set()
        assert self.release.wait(120), "the test never released the first run"
        return super().__getitem__(index)


def test_a_second_run_on_the_same_log_dir_refuses_and_names_the_first(tmp_path, sprites_64):
    """Two `fomm train` on one --log-dir would overwrite each other's checkpoint: while the first
    runs (held mid-step, so it provably holds the folder), a second process stops at once with one
    line naming it, and the first, released, finishes undisturbed."""
    import subprocess
    import sys

    log_dir = tmp_path / "run"
    release = threading.Event()
    dataset = HeldBlobs(release)
    first = Trainer(tiny_config(num_epochs=100), log_dir, device="cpu", dataset=dataset, max_steps=3, progress=False)
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(first.train()), daemon=True)
    thread.start()
    try:
        assert dataset.reading.wait(60), "the first run never started reading"
        config_path = tmp_path / "tiny.yaml"
        config = tiny_config().to_dict()
        config["dataset_params"] = {"root_dir": str(sprites_64), "frame_shape": [32, 32, 3]}
        config_path.write_text(yaml.safe_dump(config))
        second = subprocess.run([sys.executable, "-m", "fomm.cli", "train", "--config", str(config_path),
                                 "--log-dir", str(log_dir), "--threads", "1", "--no-progress", "--max-steps", "1"],
                                capture_output=True, text=True, timeout=120)
    finally:
        release.set()
        thread.join(120)
    assert second.returncode == 2, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pid {os.getpid()}" in lines[0] and "fomm train" in lines[0]
    assert outcome and outcome[0].global_step == 3
    assert read_checkpoint(log_dir / CHECKPOINT_NAME).training_state["global_step"] == 3


# -- arithmetic: bf16 autocast, channels-last, the auto choice ------------------------------------

def _first_step(config, channels_last=None, vgg=None):
    """Trainer, losses, generated tensors and the generator + detector gradient of one step from
    the config's seed."""
    trainer = Trainer(config, "unused-log-dir", device="cpu", dataset=MovingBlobs(4), progress=False,
                      channels_last=channels_last, vgg=vgg)
    batch = {key: torch.stack([trainer.dataset[i][key] for i in range(2)]) for key in ("source", "driving")}
    values, generated = trainer.train_step(batch)
    gradient = torch.cat([p.grad.flatten() for name in ("generator", "kp_detector")
                          for p in getattr(trainer.model, name).parameters() if p.grad is not None])
    return trainer, values, generated, gradient


def test_a_bf16_cpu_step_stays_close_to_the_float32_step():
    """From the same weights, batch and equivariance warp, a bf16 step's losses are those of the
    float32 step within bf16 rounding, every term finite and float32, and its gradient points the
    same way; the GAN and a VGG19 perceptual loss run under bf16 too."""
    from fomm.models.vgg import Vgg19Features

    torch.manual_seed(0)
    vgg = Vgg19Features()  # random weights: the arithmetic, not the features, is under test
    config = dict(loss_weights={**GAN, "perceptual": [1, 1, 1, 1, 1]}, perceptual_backbone="vgg19")
    fp32, fp32_values, _, fp32_gradient = _first_step(tiny_config(**config), vgg=vgg)
    bf16, bf16_values, generated, bf16_gradient = _first_step(tiny_config(mixed_precision="bf16", **config), vgg=vgg)
    assert fp32.precision.autocast_dtype is None and bf16.precision.autocast_dtype == torch.bfloat16
    assert set(bf16_values) == set(fp32_values) == {"perceptual", "gen_gan", "feature_matching", "equivariance_value",
                                                    "equivariance_jacobian", "disc_gan"}
    for name, value in bf16_values.items():
        assert np.isfinite(value), name
        assert value == pytest.approx(fp32_values[name], rel=0.03, abs=1e-3), name
    assert all(tensor.dtype == torch.float32 for tensor in generated.values())
    cosine = torch.nn.functional.cosine_similarity(bf16_gradient, fp32_gradient, dim=0)
    # Measured 0.986 (losses within 1 %): bf16 keeps 8 bits of mantissa, so each gradient element
    # carries ~1 % noise; a wrong cast or a loss left in bf16 falls far below.
    assert cosine > 0.95, f"the bf16 gradient points elsewhere (cosine {cosine:.4f} with the float32 one)"
    # Master weights stay float32; the caller's VGG is left as it was.
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())
    assert all(p.dtype == torch.float32 for p in vgg.parameters())


def test_channels_last_checkpoints_are_contiguous_and_load_strictly(tmp_path):
    """A channels-last run writes what a contiguous run of the same networks writes: contiguous
    tensors, equal values, loadable with strict=True into the reference layout; a run resumed
    from it gets its Adam moments laid out like its channels-last parameters."""
    from fomm.checkpoint import save_checkpoint

    config = tiny_config(loss_weights=GAN)
    trainer = Trainer(config, tmp_path / "cl", device="cpu", dataset=MovingBlobs(8), max_steps=2, progress=False,
                      channels_last=True)
    trainer.train()
    weight = trainer.model.generator.final.weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    written = read_checkpoint(tmp_path / "cl" / CHECKPOINT_NAME)

    contiguous = build_model(config)  # the same networks, in the reference (contiguous) layout
    contiguous.load_state_dict(trainer.model.state_dict(), strict=True)
    save_checkpoint(tmp_path / "contiguous.pth.tar", contiguous)
    reference = read_checkpoint(tmp_path / "contiguous.pth.tar")
    for name in ("kp_detector", "generator", "discriminator"):
        ours, theirs = written.state_dicts[name], reference.state_dicts[name]
        assert list(ours) == list(theirs)
        for key, value in ours.items():
            assert value.is_contiguous() and theirs[key].is_contiguous(), f"{name}.{key}"
            assert torch.equal(value, theirs[key]), f"{name}.{key}"
        fresh = getattr(build_model(config), name)
        fresh.load_state_dict(ours, strict=True)
    for name in ("generator", "kp_detector", "discriminator"):
        saved = written.training_state[f"optimizer_{name}"]["state"]
        live = trainer.optimizers[f"optimizer_{name}"].state_dict()["state"]
        assert saved and all(v.is_contiguous() for s in saved.values() for v in s.values() if v.dim() > 0)
        assert all(torch.equal(saved[i]["exp_avg"], live[i]["exp_avg"]) for i in saved)

    resumed = Trainer(config, tmp_path / "cl", device="cpu", dataset=MovingBlobs(8), progress=False,
                      checkpoint=tmp_path / "cl" / CHECKPOINT_NAME, channels_last=True)
    for optimizer in resumed.optimizers.values():
        for parameter, state in optimizer.state.items():
            assert state["exp_avg"].stride() == parameter.stride()


def test_resolve_precision_auto_picks_a_valid_setting():
    from fomm.backends.hardware import cpu_info
    from fomm.training.precision import AUTO_MIN_SPEEDUP, measure_bf16_speedup, resolve_precision

    cpu = torch.device("cpu")
    fast_bf16 = cpu_info().has_fast_bf16  # AMX or AVX512-BF16
    picked = resolve_precision("auto", cpu)
    assert picked.autocast_dtype in (None, torch.bfloat16) and picked.channels_last
    if not fast_bf16:
        assert picked.autocast_dtype is None  # never bf16 where it is emulated
    # The choice follows the measurement (a stand-in probe here; the real one below).
    quick = resolve_precision("auto", cpu, probe=lambda device: AUTO_MIN_SPEEDUP + 1)
    slow = resolve_precision("auto", cpu, probe=lambda device: 0.9)
    assert quick.autocast_dtype == (torch.bfloat16 if fast_bf16 else None)
    assert slow.autocast_dtype is None
    # With bf16 hardware the probe decides and its figure is given; without, the flags decide and say so.
    assert ("0.90x" if fast_bf16 else "AMX") in slow.reason
    assert resolve_precision("fp16", cpu).autocast_dtype is None  # fp16 trains on CUDA only
    assert resolve_precision("no", cpu, channels_last=False).memory_format == torch.contiguous_format
    speedup = measure_bf16_speedup(cpu, repeats=2)
    assert np.isfinite(speedup) and speedup > 0


def test_mixed_precision_is_validated_and_settable_from_the_command_line(tmp_path, monkeypatch, caplog):
    import logging

    from fomm.errors import ConfigError

    with pytest.raises(ConfigError, match="mixed_precision"):
        tiny_config(mixed_precision="fp8")
    parser = argparse.ArgumentParser()
    train_command.add_arguments(parser)
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(TINY_CONFIG))
    monkeypatch.setattr(Trainer, "_build_dataset", lambda self: MovingBlobs(4))
    args = parser.parse_args(["--config", str(config_path), "--log-dir", str(tmp_path / "log"), "--device", "cpu",
                              "--max-steps", "1", "--no-progress", "--mixed-precision", "bf16"])
    with caplog.at_level(logging.INFO, logger="fomm.training"):
        assert train_command.run(args) == 0
    assert "arithmetic: bf16, channels-last" in caplog.text
    assert read_checkpoint(tmp_path / "log" / CHECKPOINT_NAME).config.train_params.mixed_precision == "bf16"


def test_training_arithmetic_defaults_to_auto_and_says_why(tmp_path, monkeypatch, caplog):
    import copy
    import logging

    from fomm.models.registry import load_config, packaged_configs as packaged_config_names

    # Every packaged config trains with auto unless it says otherwise (none says no).
    assert {load_config(name).train_params.mixed_precision for name in packaged_config_names()} == {"auto"}
    data = copy.deepcopy(TINY_CONFIG)
    del data["train_params"]["mixed_precision"]  # as a published config: the default applies
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(data))
    monkeypatch.setattr(Trainer, "_build_dataset", lambda self: MovingBlobs(4))
    parser = argparse.ArgumentParser()
    train_command.add_arguments(parser)
    for flag, expected in (([], "(auto: "), (["--mixed-precision", "no"], "fp32, channels-last tensors "
                                                                          "(train_params.mixed_precision: no)")):
        caplog.clear()
        args = parser.parse_args(["--config", str(config_path), "--log-dir", str(tmp_path / f"log{len(flag)}"),
                                  "--device", "cpu", "--max-steps", "1", "--no-progress", *flag])
        with caplog.at_level(logging.INFO, logger="fomm.training"):
            assert train_command.run(args) == 0
        lines = [record.getMessage() for record in caplog.records if record.name.startswith("fomm.training")]
        arithmetic = next(index for index, line in enumerate(lines) if line.startswith("arithmetic: "))
        assert arithmetic <= 2 and expected in lines[arithmetic]  # among the first lines, with the reason
