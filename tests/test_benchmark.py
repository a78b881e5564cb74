"""`fomm benchmark quality` end to end at a tiny budget (issue #6)."""

from __future__ import annotations

import csv
import json

import torch

from fomm.cli import main
from fomm.models.registry import load_config
from fomm.evaluation.ablation import VARIANTS, variant_config

from .conftest import CONFIGS


def test_variant_configs_differ_only_where_stated():
    base = load_config(CONFIGS / "sprites-64.yaml")
    configs = {key: variant_config(base, variant, budget=7, seed=3) for key, variant in VARIANTS.items()}
    assert configs["a"].model_params.common_params.estimate_jacobian is False
    assert configs["a"].train_params.loss_weights.equivariance_jacobian == 0
    assert configs["b"].model_params.generator_params.estimate_occlusion_map is False
    assert configs["c"].model_params == base.model_params
    assert configs["d"].model_params.graph_params is not None and configs["c"].model_params.graph_params is None
    for key in "ef":
        assert configs[key].train_params.loss_weights.flow_consistency > 0
        assert configs[key].dataset_params.nearby_pair_ratio > 0
    assert configs["f"].model_params.graph_params is not None
    for config in configs.values():
        assert config.train_params.seed == 3 and config.train_params.epoch_milestones == []
        assert config.train_params.num_epochs > 7  # the budget, not the epochs, ends training
    assert base.train_params.seed == 0  # the base config is not modified


def test_benchmark_runs_end_to_end_at_a_tiny_budget(tmp_path, capsys):
    threads = torch.get_num_threads()
    out = tmp_path / "bench"
    try:
        code = main(["benchmark", "quality", "--dataset", "sprites", "--budget", "2", "--out", str(out),
                     "--videos", "4", "--frames", "6", "--size", "32", "--variants", "a,f",
                     "--landmark-epochs", "1", "--batch-size", "2", "--eval-videos", "1",
                     "--max-train-videos", "2"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    for name in ("table.md", "table.csv", "results.json", "loss_curves.png", "metrics.png", "landmarks.pt"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "dataset" / "meta.json").is_file()

    printed = capsys.readouterr().out
    table = (out / "table.md").read_text()
    for text in (printed, table):
        assert "| (a) zeroth-order |" in text and "| (f) fomm+graph+flow |" in text
        assert "flow EPE (px)" in text and "s / iter" in text

    with open(out / "table.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["key"] for row in rows] == ["a", "f"]
    for row in rows:
        assert row["steps"] == "2"
        assert float(row["L1"]) > 0 and float(row["seconds_per_iter"]) > 0
        assert row["keypoint_error"] != ""
        assert row["flow_epe"] == ""  # sprites have no ground-truth flow

    results = json.loads((out / "results.json").read_text())
    assert results["budget"] == 2 and results["kind"] == "sprites"
    assert [len(run["losses"]) for run in results["runs"]] == [2, 2]
    assert "flow_consistency" in results["runs"][1]["losses"][0]
    assert "equivariance_jacobian" not in results["runs"][0]["losses"][0]


def test_benchmark_rejects_unknown_variants(tmp_path, capsys):
    code = main(["benchmark", "quality", "--dataset", "sprites", "--budget", "1", "--out", str(tmp_path),
                 "--variants", "c,z"])
    assert code == 2
    assert "unknown variant(s) z" in capsys.readouterr().err
