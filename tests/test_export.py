"""ONNX export: onnxruntime reproduces the torch model, with a dynamic batch."""

from __future__ import annotations

import pytest

import fomm
from fomm.cli import main
from fomm.export import check_onnx

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def test_export_cli_matches_torch(reference_dir, tmp_path, capsys):
    out = tmp_path / "onnx"
    code = main(["export", "--checkpoint", str(reference_dir / "checkpoint.pth.tar"),
                 "--config", str(reference_dir / "config.yaml"), "--out", str(out)])
    assert code == 0
    assert (out / "kp_detector.onnx").stat().st_size > 0 and (out / "generator.onnx").stat().st_size > 0
    assert sorted(p.name for p in out.iterdir()) == ["generator.onnx", "kp_detector.onnx"]
    model = fomm.load_checkpoint(reference_dir / "checkpoint.pth.tar", config=reference_dir / "config.yaml")
    assert check_onnx(model, out / "kp_detector.onnx", out / "generator.onnx", batch=4) < 1e-4
    assert "max abs difference" in capsys.readouterr().out
