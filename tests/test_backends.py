"""The exported runtimes behind the Animator: onnxruntime and OpenVINO run the graphs exported
into the cache, agree with torch, and ``backend="auto"`` uses them once the export is cached."""

from __future__ import annotations

import json
import re

import pytest
import torch
import yaml

import fomm
from fomm.animate import Animator
from fomm.assets import BUNDLED_DRIVING
from fomm.backends import FP32_TOLERANCE, MIN_PSNR_DB, candidates, psnr
from fomm.backends.cache import cached_export, exported_files
from fomm.backends.fused import has_winograd_layers
from fomm.backends.onnxruntime_engine import OnnxRuntimeEngine
from fomm.backends.torch_engine import TorchEngine
from fomm.backends.selection import Candidate, _preferences, forget_choices
from fomm.cli import main
from fomm.config import FommConfig
from fomm.data.media import read_driving_video
from fomm.data.video import video_info
from fomm.errors import UserError

from .conftest import bundled_clip, fresh_cache

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One FOMM_CACHE for the module, sharing the session's exports (test_export's CLI test and
    the others reuse the export made here)."""
    folder = fresh_cache(tmp_path_factory.getbasetemp() / "backends-cache")
    forget_choices()  # choices an earlier test of this process made would skip the measuring
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FOMM_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def model(reference_dir):
    return fomm.load_checkpoint(reference_dir / "checkpoint.pth.tar", config=reference_dir / "config.yaml")


@pytest.fixture(scope="module")
def files(model, cache):
    """The model's graphs, exported into the cache on demand (as backend auto does)."""
    exported = exported_files(model)
    assert exported == cached_export(model) and exported.exist()
    assert str(exported.render).startswith(str(cache / "onnx"))
    return exported


def frames(height: int, width: int, count: int = 12):
    return bundled_clip(height, width, count)


def plain(model, source, driving) -> torch.Tensor:
    return Animator(model, engine=TorchEngine(model, "fp32", optimize=False)).animate(source, driving)


def test_onnxruntime_backend_matches_torch(model, files):
    source, driving = frames(64, 64)
    animator = Animator(model, backend="onnxruntime", precision="fp32", batch_size=5)
    result = animator.animate(source, driving)
    assert animator.engine.name == "onnxruntime fp32"
    assert (result - plain(model, source, driving)).abs().max() <= FP32_TOLERANCE


def test_exported_graphs_take_other_sizes_and_batches(model, files):
    source, driving = frames(96, 128, count=3)  # not the 64x64 the model was exported at
    engine = OnnxRuntimeEngine(model, files)
    result = Animator(model, engine=engine, batch_size=3).animate(source, driving)
    assert result.shape == (3, 3, 96, 128)
    assert (result - plain(model, source, driving)).abs().max() <= FP32_TOLERANCE


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_openvino_backend_within_tolerance(model, files, precision):
    pytest.importorskip("openvino")
    source, driving = frames(64, 64)
    animator = Animator(model, backend="openvino", precision=precision, batch_size=4)
    result = animator.animate(source, driving)
    expected = plain(model, source, driving)
    assert animator.engine.name == f"openvino {precision}"
    if precision == "fp32":
        assert (result - expected).abs().max() <= FP32_TOLERANCE
    else:  # on CPUs without bf16 hardware OpenVINO computes fp32: within tolerance either way
        assert psnr(result, expected) >= MIN_PSNR_DB


def test_auto_backend_uses_a_cached_export_and_remembers(model, files, cache):
    source, driving = frames(64, 64)
    animator = Animator(model, backend="auto", precision="auto")
    result = animator.animate(source, driving)
    offered = {(c.backend, c.precision) for c in candidates(model.device)}
    assert (animator.engine.backend, animator.engine.precision) in offered
    # The export is cached, so auto runs it on OpenVINO (installed here) rather than torch.
    if "openvino" in {backend for backend, _ in offered}:
        assert animator.engine.backend == "openvino"
    assert {(m.backend, m.precision) for m in animator.measurements} <= offered
    assert psnr(result, plain(model, source, driving)) >= MIN_PSNR_DB
    stored = json.loads((cache / "choices.json").read_text())
    record = next(value for key, value in stored.items() if "asked auto auto" in key)
    assert (record["backend"], record["precision"]) == (animator.engine.backend, animator.engine.precision)
    assert len(record["measurements"]) == len(animator.measurements)
    again = Animator(model, backend="auto", precision="auto")
    again.animate(source, driving[:3])
    assert again.measurements == [] and again.engine.name == animator.engine.name


def test_int8_animates_close_to_fp32_and_reuses_its_quantisation(model, files, cache):
    pytest.importorskip("nncf")
    source, driving = frames(64, 64)
    animator = Animator(model, backend="auto", precision="int8", batch_size=4)
    result = animator.animate(source, driving)
    assert animator.engine.name == "openvino int8"
    quantised = sorted(files.render.parent.glob("int8-*/render.xml"))
    assert len(quantised) == 1  # calibrated on this clip's source and first 8 frames, beside the export
    # The small reference model (trained briefly, 64x64) in int8: measured 62.4 dB against fp32.
    assert psnr(result, plain(model, source, driving)) >= 50.0
    again = Animator(model, backend="openvino", precision="int8", batch_size=4)
    assert (again.animate(source, driving) - result).abs().max() == 0  # the same int8 graphs
    # Another clip reuses the model's quantisation rather than spending seconds on a new one.
    other_clip = Animator(model, backend="openvino", precision="int8", batch_size=4)
    other_clip.animate(source.flip(-1), driving.flip(0))
    assert sorted(files.render.parent.glob("int8-*/render.xml")) == quantised


def test_int8_on_another_backend_is_a_user_error(model):
    with pytest.raises(UserError, match="openvino"):
        Animator(model, backend="torch", precision="int8").animate(*frames(64, 64, count=2))


def test_onnxruntime_has_no_reduced_precision(model, files):
    with pytest.raises(UserError, match="fp32 only"):
        Animator(model, backend="onnxruntime", precision="bf16").animate(*frames(64, 64, count=2))


def test_cli_animate_with_an_exported_backend(reference_dir, files, tmp_path, capsys):
    out = tmp_path / "result.mp4"
    code = main(["animate", "--checkpoint", str(reference_dir / "checkpoint.pth.tar"), "--config",
                 str(reference_dir / "config.yaml"), "--backend", "onnxruntime", "--precision", "fp32",
                 "--out", str(out), "--device", "cpu"])
    assert code == 0
    count = len(read_driving_video(BUNDLED_DRIVING)[0])
    assert video_info(out).num_frames == count
    # The summary names the runtime and arithmetic, and the seconds to the first frame.
    assert re.search(rf"wrote {count} frames at [0-9.]+ fps \(onnxruntime fp32; first frame after [0-9.]+ s",
                     capsys.readouterr().out)


def test_a_damaged_cached_graph_is_detected_and_exported_again(model, files, caplog, tmp_path):
    """A cached graph truncated or overwritten since it was exported is found by its SHA-256 when
    the cache is next used: one warning, a fresh export, and the runtime works; ``fomm export``
    never copies a damaged graph either."""
    original = files.render.read_bytes()
    files.render.write_bytes(original[: len(original) // 2])  # truncated (overwritten is the same to a hash)
    with caplog.at_level("WARNING", logger="fomm"):
        exported = exported_files(model)
    assert "is damaged (render.onnx does not match its recorded SHA-256" in caplog.text
    assert len(exported.render.read_bytes()) > len(original) // 2
    source, driving = frames(64, 64, count=4)
    result = Animator(model, engine=OnnxRuntimeEngine(model, exported), batch_size=4).animate(source, driving)
    assert (result - plain(model, source, driving)).abs().max() <= FP32_TOLERANCE


def test_fp32_prefers_torch_only_for_models_with_wide_residual_blocks(model, files, reference_dir):
    # Both exported: the narrow reference model's fp32 goes to OpenVINO, a model whose residual
    # blocks are wide enough for the fused networks' Winograd convolutions stays on torch.
    raw = yaml.safe_load((reference_dir / "config.yaml").read_text())
    raw["model_params"]["generator_params"].update(block_expansion=64, max_features=128, num_down_blocks=1)
    torch.manual_seed(0)
    wide = fomm.build_model(FommConfig.model_validate(raw)).eval()
    assert has_winograd_layers(wide) and not has_winograd_layers(model)
    assert exported_files(wide).exist()
    found = candidates(model.device)
    if Candidate("openvino", "fp32") not in found:
        pytest.skip("needs OpenVINO")
    assert _preferences(model, found, "fp32")[0][0] == Candidate("openvino", "fp32")
    assert _preferences(wide, found, "fp32")[0][0] == Candidate("torch", "fp32")
