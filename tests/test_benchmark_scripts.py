"""The scripts under benchmarks/ run against the package as it is now.

They are how every speed figure in docs/benchmarks.md is printed, and nothing else imports them, so
an API change breaks them silently (two did: ``Animator.steps`` renamed, the trainer's optimiser
keys). Each test runs a script's real code path at the smallest size: the bundled model, a few
frames, one or a few training steps. The figures themselves are not checked, only that they are
produced and hang together.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def speed() -> ModuleType:
    return load_script("speed")


def test_speed_times_a_row_the_first_frame_and_a_clip(speed):
    import fomm
    from fomm.assets import BUNDLED_CHECKPOINT
    from fomm.backends.torch_engine import TorchEngine

    model = fomm.load_checkpoint(BUNDLED_CHECKPOINT)
    source, driving = speed.real_frames(64, 64, 4)
    fps, cpu_fps, frames, _ = speed.run_row(model, lambda: TorchEngine(model, "fp32", optimize=False), source,
                                            driving, batch=2, repeats=1, device=torch.device("cpu"))
    assert fps > 0 and cpu_fps > 0 and frames.shape == driving.shape
    seconds, engine = speed.seconds_to_first_frame(model, source, driving, "fp32", "torch")
    assert 0 < seconds < 60 and engine == "torch fp32"
    runs = speed.clip_rows(BUNDLED_CHECKPOINT, source, driving, torch.device("cpu"), batch=2, int8=False)
    assert runs[0].request == speed.BASELINE and runs[0].max_abs_diff == 0
    fused = next(run for run in runs if run.request == "precision=fp32, backend=torch")
    assert fused.max_abs_diff < 1e-4  # the fused fp32 networks: the original's frames
    table = speed.clip_table(runs, len(driving)).splitlines()
    assert len(table) == 4 + len(runs) and all(f"| {run.request} |" in "\n".join(table) for run in runs)


def test_live_reads_the_summary_fomm_live_prints(tmp_path):
    from fomm.assets import BUNDLED_CHECKPOINT

    live = load_script("live")
    clip = live.driving_clip(tmp_path, 64, 12, 25.0)
    output = live.run_live(BUNDLED_CHECKPOINT, clip, tmp_path / "out.mp4", threads=1, precision="fp32")
    row = live.parse(output, "bundled", 1, "fp32")
    assert row.read == 12 and row.animated + row.dropped == row.read and row.animated > 0
    assert row.fps > 0 and row.latency_ms[0] <= row.latency_ms[1] <= row.latency_ms[2]
    assert row.engine.endswith("fp32")  # torch or, with the export cached, OpenVINO
    last = live.table([row], 25.0, 12).splitlines()[-1]
    assert last.startswith(f"| bundled | 12 frames, 25 fps | 1 | fp32 | {row.engine} | {row.animated} / 12 "
                           f"({row.dropped}) |")


def test_train_speed_times_each_variant():
    train_speed = load_script("train_speed")
    runs = train_speed.measure("sprites-64", ["baseline", "default"], steps=1, device="cpu")
    assert [run.variant for run in runs] == ["baseline", "default"]
    assert all(len(run.times) == 1 and run.times[0] > 0 for run in runs)
    baseline = runs[0].trainer
    # The original's path: float32, contiguous tensors, torch's per-parameter Adam loop.
    assert baseline.precision.autocast_dtype is None and not baseline.precision.channels_last
    assert all(group["foreach"] is False for optimizer in baseline.optimizers.values()
               for group in optimizer.param_groups)
    optimized = [sum(len(group["params"]) for optimizer in run.trainer.optimizers.values()
                     for group in optimizer.param_groups) for run in runs]
    assert optimized[0] == optimized[1] > 0  # the same parameters as the trainer's own optimisers


def test_train_precision_compares_where_runs_end(sprites_64):
    train_precision = load_script("train_precision")
    curves = [(train_precision.train(sprites_64, "no", seed, 2, f"fp32 (seed {seed})"),
               train_precision.train(sprites_64, "bf16", seed, 2, f"bf16 (seed {seed})")) for seed in (0, 1)]
    fp32, bf16 = curves[0]
    assert len(fp32.history) == len(bf16.history) == 2 and fp32.history != bf16.history
    terms = ["total", *fp32.history[0]]
    table = train_precision.end_of_run_table(curves, 2, terms).strip().splitlines()
    assert table[2].startswith("| term | seed 0 | seed 1 |") and len(table) == 4 + len(terms)
    total = table[4].split("|")
    final = lambda curve: float(curve.smoothed("total", 2)[-1])  # noqa: E731
    assert total[2].strip() == f"{final(fp32):.4f} / {final(bf16):.4f}"
    spread = abs(final(curves[0][0]) - final(curves[1][0]))
    assert math.isclose(float(total[-2]), spread, abs_tol=1e-4)


def test_transfer_cost_times_every_mode_the_bundled_model_offers(capsys, monkeypatch):
    script = load_script("transfer_cost")
    monkeypatch.setattr(sys, "argv", ["transfer_cost.py", "--batch", "2", "--calls", "2", "--threads", "1"])
    script.main()
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line]
    modes = [row.split("|")[1].strip() for row in rows[1:]]
    assert modes == ["relative", "absolute", "learned"]
    assert all(float(row.split("|")[2]) > 0 for row in rows[1:])
