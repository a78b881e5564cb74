"""ONNX export: onnxruntime reproduces the torch model, with a dynamic batch and image size."""

from __future__ import annotations

import pytest

import fomm
from fomm.cli import main
from fomm.export import OnnxFiles, check_onnx

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def test_export_cli_matches_torch_at_two_sizes(reference_dir, tmp_path, capsys):
    out = tmp_path / "onnx"
    code = main(["export", "--checkpoint", str(reference_dir / "checkpoint.pth.tar"),
                 "--config", str(reference_dir / "config.yaml"), "--out", str(out)])
    assert code == 0
    files = OnnxFiles.in_folder(out)
    assert sorted(p.name for p in out.iterdir()) == ["describe.onnx", "encode_source.onnx", "graphs.json", "render.onnx"]
    assert all(path.stat().st_size > 0 for path in files.all())
    printed = capsys.readouterr().out
    assert "max abs difference" in printed and "multiples of 32" in printed

    model = fomm.load_checkpoint(reference_dir / "checkpoint.pth.tar", config=reference_dir / "config.yaml")
    multiple = model.size_multiple()
    assert multiple == 32 and model.frame_shape[:2] == (64, 64)
    # Another batch than the export's, the trained size and a larger, non-square one.
    assert check_onnx(model, files, batch=4, sizes=[(64, 64), (64 + multiple, 64 + 2 * multiple)]) < 1e-4


def test_size_multiple_of_the_published_configs():
    assert fomm.build_model(fomm.load_config("vox-256")).size_multiple() == 128
