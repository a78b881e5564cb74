"""Seconds to the first frame: the CPU flags (held to ONEDNN_MAX_CPU_ISA) rule candidates out
before anything runs, the reduced-precision probe is small and remembered, and a second Animator
for the same model reuses the first one's fused networks."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

import fomm
from fomm.animate import Animator
from fomm.assets import BUNDLED_CHECKPOINT
from fomm.backends import candidates, choose_engine
from fomm.backends.hardware import capped_flags, cpu_info
from fomm.backends.probe import best_seconds, reduced_speedup
from fomm.backends.selection import forget_choices

from .conftest import bundled_clip, fresh_cache

#: The flags of the machine these figures come from (an AMX Xeon), for the pure cap tests.
XEON = frozenset("sse4_2 avx avx2 fma avx512f avx512bw avx512dq avx512vl avx512cd avx512_vnni avx512_bf16 "
                 "avx512_fp16 avx_vnni amx_tile amx_int8 amx_bf16".split())


@pytest.fixture()
def capped(monkeypatch):
    """Set ONEDNN_MAX_CPU_ISA for one test; fomm reads the flags afresh, and again after.

    oneDNN reads the variable once, at its first kernel: one runs here first, so that the cap
    set for fomm never reaches oneDNN in this process (it would hold every later test to it)."""
    image = torch.rand(1, 8, 16, 16).contiguous(memory_format=torch.channels_last)
    torch.nn.functional.conv2d(image, torch.rand(8, 8, 3, 3).contiguous(memory_format=torch.channels_last))

    def cap(level: str) -> None:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", level)
        cpu_info.cache_clear()

    # Each test starts from the machine's own flags, even in a run held to a cap from outside.
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    cpu_info.cache_clear()
    yield cap
    monkeypatch.undo()  # the variable as it was (a cap from outside included), then the flags afresh
    cpu_info.cache_clear()


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FOMM_CACHE", str(fresh_cache(tmp_path / "cache")))
    forget_choices()
    yield tmp_path / "cache"
    forget_choices()


@pytest.fixture(scope="module")
def bundled():
    return fomm.load_checkpoint(BUNDLED_CHECKPOINT)


@pytest.fixture(scope="module")
def clip(bundled):
    height, width, _ = bundled.frame_shape
    return bundled_clip(height, width, 6)


def test_isa_cap_holds_back_what_onednn_will_not_use():
    zen4 = capped_flags(XEON, "AVX512_CORE_BF16")
    assert {"avx512_bf16", "avx512_vnni", "avx512f"} <= zen4 and not {"amx_bf16", "amx_int8", "avx512_fp16"} & zen4
    laptop = capped_flags(XEON, "AVX2_VNNI")
    assert {"avx2", "fma", "avx_vnni"} <= laptop and not any(flag.startswith(("avx512", "amx")) for flag in laptop)
    assert capped_flags(XEON, "AVX2") & {"avx_vnni", "avx512_vnni", "amx_int8"} == set()
    assert "sse4_2" in capped_flags(XEON, "AVX2")  # flags no level governs pass through
    assert capped_flags(XEON, None) == XEON


def test_cpu_info_reads_the_cap(capped):
    native = cpu_info().flags
    capped("avx2")  # any case, as oneDNN accepts it
    info = cpu_info()
    assert info.cap == "AVX2" and "ONEDNN_MAX_CPU_ISA=AVX2" in info.isa_summary()
    assert info.flags <= native and not info.has_fast_bf16
    capped("NOT_A_LEVEL")  # oneDNN ignores an unknown level, and so does fomm
    assert cpu_info().cap is None and cpu_info().flags == native


def test_auto_runs_nothing_the_flags_rule_out(bundled, clip, capped, cache):
    source, driving = clip
    capped("AVX2")
    assert [str(c) for c in candidates(bundled.device, "torch", "auto")] == ["torch fp32"]
    engine, measurements = choose_engine(bundled, "torch", "auto", source[None], driving[:2])
    assert engine.name == "torch fp32" and measurements == []
    assert not (cache / "choices.json").exists()  # nothing was chosen between: nothing to remember


def test_probe_is_small_and_remembered():
    cpu = torch.device("cpu")
    start = time.perf_counter()
    first = reduced_speedup("bf16", cpu, repeats=2)
    assert first > 0 and time.perf_counter() - start < 10  # ~0.4 s on two busy cores
    start = time.perf_counter()
    assert reduced_speedup("bf16", cpu, repeats=2) == first and time.perf_counter() - start < 0.01
    with pytest.raises(ValueError):
        reduced_speedup("int8", cpu)


def test_timings_warm_each_run_once_then_alternate():
    calls: list[str] = []
    times = best_seconds(lambda: calls.append("a"), lambda: (calls.append("b"), time.sleep(0.01)), repeats=3)
    assert calls == ["a", "b"] + ["a", "b"] * 3
    assert len(times) == 2 and 0 <= times[0] < 0.01 <= times[1]


def test_second_animator_reuses_the_fused_networks(bundled, clip):
    source, driving = clip
    first = Animator(bundled, precision="fp32", backend="torch")
    frames = first.animate(source, driving)
    second = Animator(bundled, precision="fp32", backend="torch")
    assert torch.equal(second.animate(source, driving), frames)
    assert second.engine is not first.engine and second.engine.networks is first.engine.networks
    other = Animator(bundled, precision="bf16", backend="torch")
    other.animate(source, driving[:1])
    assert other.engine.networks is not first.engine.networks  # another arithmetic, its own copy
    parameter = next(bundled.generator.parameters())
    with torch.no_grad():
        parameter.mul_(1.0)  # an in-place change (as training makes) bumps the weights' version
    changed = Animator(bundled, precision="fp32", backend="torch")
    changed.animate(source, driving[:1])
    assert changed.engine.networks is not first.engine.networks


def test_training_auto_takes_bf16_where_the_hardware_has_it_and_the_probe_says_it_pays(capped):
    from fomm.training.precision import resolve_precision

    cpu, fast, slow = torch.device("cpu"), lambda device: 10.0, lambda device: 1.1
    capped("AVX512_CORE_BF16")  # AVX512-BF16 without AMX (Zen 4): bf16 where the probe says it pays
    zen4 = resolve_precision("auto", cpu, probe=fast)
    assert zen4.autocast_dtype == torch.bfloat16 and "AVX512-BF16" in zen4.reason and "10.0x" in zen4.reason
    held_back = resolve_precision("auto", cpu, probe=slow)  # an Intel core below AMX: bf16 no faster
    assert held_back.autocast_dtype is None and "1.10x" in held_back.reason
    assert resolve_precision("bf16", cpu).autocast_dtype == torch.bfloat16  # asked for: the user's call
    capped("AVX2")  # no bf16 hardware: the probe is not even asked
    assert resolve_precision("auto", cpu, probe=fast).autocast_dtype is None


def test_explicit_bf16_runs_where_onednn_has_no_bf16_kernels():
    """On an AVX2-only CPU oneDNN's fused kernels refuse bf16 ('bf16 path needs the cpu support
    avx_ne_convert or avx512bw...'); ``--precision bf16`` must still animate there (emulated, slow),
    not crash. oneDNN reads its cap once per process, hence a fresh one held to AVX2."""
    import os
    import subprocess
    import sys

    script = """
import torch
import fomm
from fomm.animate import Animator
from fomm.assets import BUNDLED_CHECKPOINT
from fomm.backends import psnr
from tests.conftest import bundled_clip

assert not torch.ops.mkldnn._is_mkldnn_bf16_supported()
model = fomm.load_checkpoint(BUNDLED_CHECKPOINT)
source, driving = bundled_clip(64, 64, 4)
bf16 = Animator(model, precision="bf16", backend="torch").animate(source, driving)
fp32 = Animator(model, precision="fp32", backend="torch").animate(source, driving)
print(f"{psnr(bf16, fp32):.1f}")
"""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.split()[-1]) > 35  # bf16 frames, close to fp32's (56 dB where it is native)
