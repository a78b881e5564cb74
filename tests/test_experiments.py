"""The variants experiment (`fomm experiment variants`, alias `fomm benchmark quality`), its paired
statistics, and the learning curve (`fomm experiment curve`) (issues #6, #16, #21)."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from fomm.cli import main
from fomm.config import load_config
from fomm.experiments.variants import VARIANTS, run_variants_experiment, variant_config
from fomm.evaluation.statistics import mean_std, paired_difference, t_quantile

from .conftest import CONFIGS

TINY = dict(videos=4, frames=6, size=32, landmark_epochs=1, batch_size=2, eval_videos=1, max_train_videos=2)
TINY_ARGS = ["--videos", "4", "--frames", "6", "--size", "32", "--landmark-epochs", "1", "--batch-size", "2",
             "--eval-videos", "1", "--max-train-videos", "2"]


# --- statistics ---------------------------------------------------------------------------------


def test_paired_difference_gives_the_textbook_t_interval():
    # Differences 1, 2, 3, 4, 5: mean 3, sample std sqrt(2.5), t(0.975, 4 df) = 2.776445 (tables).
    after = [12.0, 14.5, 11.0, 13.0, 15.5]
    before = [11.0, 12.5, 8.0, 9.0, 10.5]
    result = paired_difference(after, before)
    half_width = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    assert result.n == 5 and result.confidence == 0.95
    assert result.mean == pytest.approx(3.0) and result.std == pytest.approx(math.sqrt(2.5))
    assert result.ci_low == pytest.approx(3.0 - half_width, abs=1e-5)
    assert result.ci_high == pytest.approx(3.0 + half_width, abs=1e-5)
    assert result.verdict == "higher"
    swapped = paired_difference(before, after)
    assert swapped.verdict == "lower" and swapped.ci_high == pytest.approx(-result.ci_low)
    # A wider interval at 99 % (t(0.995, 4) = 4.604095).
    assert paired_difference(after, before, 0.99).ci_low == pytest.approx(3.0 - 4.604095 * math.sqrt(0.5), abs=1e-5)


def test_paired_difference_of_identical_or_balanced_samples_is_not_significant():
    same = paired_difference([0.3, 0.5, 0.7], [0.3, 0.5, 0.7])
    assert same.mean == 0 and same.std == 0 and (same.ci_low, same.ci_high) == (0, 0)
    assert same.verdict == "no significant difference"
    balanced = paired_difference([1.0, -1.0, 2.0, -2.0], [0.0, 0.0, 0.0, 0.0])
    assert balanced.ci_low < 0 < balanced.ci_high and balanced.verdict == "no significant difference"


def test_one_pair_gives_no_interval_and_says_why():
    result = paired_difference([0.5], [0.25])
    assert result.mean == 0.25 and result.n == 1
    assert result.std is None and result.ci_low is None and result.ci_high is None
    assert result.verdict == "undetermined" and "two seeds" in result.note


def test_statistics_reject_what_they_cannot_compute():
    with pytest.raises(ValueError, match="same length"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least one"):
        paired_difference([], [])
    with pytest.raises(ValueError, match="confidence"):
        paired_difference([1.0, 2.0], [0.0, 0.0], confidence=95)
    with pytest.raises(ValueError, match="at least one"):
        mean_std([])


def test_mean_std_is_the_sample_standard_deviation():
    summary = mean_std([1.0, 2.0, 3.0, 4.0])
    assert summary.mean == 2.5 and summary.n == 4 and summary.std == pytest.approx(math.sqrt(5 / 3))
    assert mean_std([7.0]).std is None
    assert t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-4)
    assert t_quantile(0.975, 30) == pytest.approx(2.0423, abs=1e-4)


# --- the benchmark over seeds ---------------------------------------------------------------------


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


def test_the_seed_graph_variant_uses_the_seed_style():
    base = load_config(CONFIGS / "sprites-64.yaml")
    config = variant_config(base, VARIANTS["g"], budget=5, seed=2)
    graph = config.model_params.graph_params
    assert graph is not None and graph.style == "seed" and graph.mix_weight == 0.3 and graph.num_heads == 1
    improved = variant_config(base, VARIANTS["d"], budget=5, seed=2).model_params.graph_params
    assert improved is not None and improved.style == "improved" and improved.mix_weight == 0.5
    assert VARIANTS["g"].folder == "g-fomm-graph-seed"


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    """Variants c and g, two seeds each, two iterations per run, on a tiny sprites dataset."""
    out = tmp_path_factory.mktemp("bench")
    threads = torch.get_num_threads()
    messages: list[str] = []
    try:
        result = run_variants_experiment("sprites", 2, out, seeds=2, variants=["c", "g"], log=messages.append, **TINY)
    finally:
        torch.set_num_threads(threads)
    return out, result, messages


def test_runs_are_laid_out_per_variant_and_seed(benchmark):
    out, result, _ = benchmark
    for folder in ("c-fomm", "g-fomm-graph-seed"):
        for seed in (0, 1):
            run = out / "runs" / folder / f"seed-{seed}"
            assert (run / "result.json").is_file() and (run / "checkpoint.pth.tar").is_file()
            assert json.loads((run / "result.json").read_text())["seed"] == seed
    for name in ("table.md", "table.csv", "runs.csv", "results.json", "loss_curves.png", "metrics.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert result.seeds == [0, 1] and [(r.key, r.seed) for r in result.runs] == [("c", 0), ("c", 1), ("g", 0), ("g", 1)]
    # Different training seeds give different runs on the same data.
    c0, c1 = result.runs_of("c")
    assert c0.metrics["L1"] != c1.metrics["L1"]
    assert c0.settings["dataset"] == c1.settings["dataset"]


def test_table_has_mean_and_std_over_seeds(benchmark):
    out, result, _ = benchmark
    table = (out / "table.md").read_text()
    assert "training seeds 0, 1 (mean ± std over seeds" in table
    assert "kp accel (% w)" in table
    c_l1 = [run.metrics["L1"] for run in result.runs_of("c")]
    mean, std = sum(c_l1) / 2, abs(c_l1[0] - c_l1[1]) / math.sqrt(2)
    row = next(line for line in table.splitlines() if line.startswith("| (c) fomm |"))
    assert row.split(" | ")[1] == f"{mean:.4f} ± {std:.4f}"
    assert "| (g) fomm+graph(seed) |" in table

    with open(out / "table.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["key"] for row in rows] == ["c", "g"] and rows[0]["seeds"] == "0 1"
    assert float(rows[0]["L1"]) == pytest.approx(mean) and float(rows[0]["L1_std"]) == pytest.approx(std)
    with open(out / "runs.csv") as handle:
        runs = list(csv.DictReader(handle))
    assert [(row["key"], row["seed"]) for row in runs] == [("c", "0"), ("c", "1"), ("g", "0"), ("g", "1")]


def test_claims_compare_the_variants_seed_by_seed(benchmark):
    out, result, _ = benchmark
    table = (out / "table.md").read_text()
    assert "## Claims" in table
    claims = json.loads((out / "results.json").read_text())["claims"]
    # Only the claims whose two variants ran: the seed graph against FOMM.
    assert {(c["variant"], c["reference"]) for c in claims} == {("g", "c")}
    assert [c["metric"] for c in claims] == ["jitter", "kp_acceleration", "keypoint_error"]
    for claim in claims:
        if claim["difference"] is None:  # a metric this evaluation does not have
            assert claim["verdict"] == "n/a" and claim["note"]
            continue
        runs = {(run.key, run.seed): run.metrics[claim["metric"]] for run in result.runs}
        expected = sum(runs["g", s] - runs["c", s] for s in (0, 1)) / 2
        difference = claim["difference"]
        assert claim["seeds"] == [0, 1] and difference["n"] == 2
        assert difference["mean"] == pytest.approx(expected)
        assert difference["ci_low"] <= expected <= difference["ci_high"]
        assert claim["verdict"] in ("lower", "higher", "no significant difference")
    assert sum(claim["difference"] is not None for claim in claims) >= 2  # jitter and keypoint error
    rows = [line for line in table.splitlines() if line.startswith("| (g) fomm+graph(seed) vs (c) fomm |")]
    assert len(rows) == 3 and claims[0]["claim"] == "seed graph vs FOMM"


def test_a_rerun_reuses_the_runs_and_more_seeds_train_only_the_new_ones(benchmark):
    out, result, _ = benchmark
    saved = out / "runs" / "c-fomm" / "seed-0" / "result.json"
    written = saved.stat().st_mtime_ns
    threads = torch.get_num_threads()
    messages: list[str] = []
    try:
        again = run_variants_experiment("sprites", 2, out, seeds=3, variants=["c"], log=messages.append, **TINY)
    finally:
        torch.set_num_threads(threads)
    assert saved.stat().st_mtime_ns == written
    assert sum("reusing" in m and "runs" in m for m in messages) == 2
    assert sum("training 2 iterations" in m for m in messages) == 1 and "seed 2" in "".join(messages)
    assert [run.seed for run in again.runs] == [0, 1, 2]
    assert again.runs[0].metrics == result.runs[0].metrics


# --- the learning curve ---------------------------------------------------------------------------


def test_learning_curve_evaluates_every_n_iterations_and_resumes(benchmark, capsys):
    out, result, _ = benchmark  # the benchmark's folder: same dataset and landmark detector
    threads = torch.get_num_threads()
    try:
        code = main(["experiment", "curve", "--dataset", "sprites", "--budget", "3", "--every", "2",
                     "--out", str(out)] + TINY_ARGS)
        assert code == 0
        first = capsys.readouterr()
        code = main(["benchmark", "curve", "--dataset", "sprites", "--budget", "3", "--every", "2",
                     "--out", str(out)] + TINY_ARGS)
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    second = capsys.readouterr()
    assert "training steps 1..2" in first.err and "training steps 3..3" in first.err
    assert "training steps" not in second.err  # every point was already there
    run = out / "runs" / "curve-c-fomm" / "seed-0"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000002.pth.tar", "step-000003.pth.tar"]
    for name in ("curve.csv", "curve.md", "curve.json", "curve.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    with open(out / "curve.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["step"] for row in rows] == ["0", "2", "3"]
    assert rows[0]["train_perceptual"] == "" and float(rows[1]["train_perceptual"]) > 0
    # Step 2 of the curve is the benchmark's run of (c) with seed 0 at a budget of 2.
    assert float(rows[1]["L1"]) == pytest.approx(result.runs_of("c")[0].metrics["L1"], rel=1e-6)
    assert float(rows[1]["L1"]) != float(rows[0]["L1"])  # two steps of training moved the untrained model
    assert "| step | train s | L1 |" in first.out and "First step within 5 %" in first.out


def test_cli_rejects_bad_counts(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "variants", "--dataset", "sprites", "--budget", "1", "--out", str(tmp_path), "--seeds", "0"])
    assert exit_info.value.code == 2 and "--seeds: must be at least 1" in capsys.readouterr().err
    code = main(["experiment", "curve", "--dataset", "sprites", "--budget", "4", "--every", "0",
                 "--out", str(tmp_path)])
    assert code == 2 and "--every must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["experiment", "curve", "--dataset", "sprites", "--budget", "4", "--every", "2", "--variant", "z",
              "--out", str(tmp_path)])
    assert "invalid choice: 'z'" in capsys.readouterr().err
    assert not (tmp_path / "dataset").exists()  # nothing was generated for a rejected command


def test_the_experiment_rejects_unknown_variants(tmp_path, capsys):
    code = main(["experiment", "variants", "--dataset", "sprites", "--budget", "1", "--out", str(tmp_path),
                 "--variants", "c,z"])
    assert code == 2
    assert "unknown variant(s) z" in capsys.readouterr().err
