"""The variants experiment (`fomm experiment variants`, alias `fomm benchmark quality`), the statistics
its verdicts rest on, and the learning curve (`fomm experiment curve`) (issues #6, #16, #21, #23)."""

from __future__ import annotations

import csv
import itertools
import json
import math
import warnings

import pytest
import torch
from scipy import stats

from fomm.cli import build_parser, main
from fomm.models.registry import load_config
from fomm.errors import UserError
from fomm.evaluation.metrics import keypoint_acceleration, smooth_tracks
from fomm.evaluation.statistics import (
    RANDOM_SIGN_FLIPS,
    bootstrap_ratio_interval,
    holm_adjusted,
    mean_std,
    paired_difference,
    random_sign_flip_p_value,
    sign_flip_p_value,
    t_quantile,
)
from fomm.experiments.variants import (
    PREREGISTERED,
    VARIANTS,
    check_variants,
    run_variants_experiment,
    variant_config,
)
from fomm.checkpoint import load_checkpoint
from fomm.models import FommModel, build_model
from fomm.models.mraa import MraaModel
from fomm.models.tpsmm import TpsmmModel

from .conftest import CONFIGS

# 8 videos: 6 train, 2 test, so the test split has 2 cross pairs.
TINY = dict(videos=8, frames=6, size=32, landmark_epochs=1, batch_size=2, eval_videos=2, max_train_videos=2)
TINY_ARGS = ["--videos", "8", "--frames", "6", "--size", "32", "--landmark-epochs", "1", "--batch-size", "2",
             "--eval-videos", "2", "--max-train-videos", "2"]


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
    assert result.t_p_value == pytest.approx(stats.ttest_1samp([1, 2, 3, 4, 5], 0).pvalue)
    # All five differences positive: the most extreme of 2^5 sign patterns, and its mirror image.
    assert result.permutation_p_value == pytest.approx(2 / 32)
    swapped = paired_difference(before, after)
    assert swapped.verdict == "lower" and swapped.ci_high == pytest.approx(-result.ci_low)
    # A wider interval at 99 % (t(0.995, 4) = 4.604095).
    assert paired_difference(after, before, 0.99).ci_low == pytest.approx(3.0 - 4.604095 * math.sqrt(0.5), abs=1e-5)


def test_the_sign_flip_test_counts_sign_patterns():
    differences = [0.5, -0.2, 1.1, 0.7, 0.9, 0.3, -0.1, 0.8]
    observed = abs(sum(differences))
    extreme = sum(abs(sum(s * d for s, d in zip(signs, differences))) >= observed - 1e-12
                  for signs in itertools.product((1, -1), repeat=8))
    assert sign_flip_p_value(differences) == pytest.approx(extreme / 256)
    assert sign_flip_p_value([0.0, 0.0, 0.0]) == 1.0
    assert sign_flip_p_value([1.0] * 8) == pytest.approx(2 / 256)  # the smallest p with 8 seeds
    # Sampled assignments estimate the exact p-value, and never give 0.
    assert random_sign_flip_p_value(differences, 100_000) == pytest.approx(extreme / 256, abs=0.005)
    assert random_sign_flip_p_value([1.0] * 8, 100_000) == pytest.approx(2 / 256, abs=0.002)


def test_above_twenty_pairs_the_sign_flip_test_samples_assignments():
    # 30 differences of one sign: only 2 of 2^30 assignments are as extreme, so the sampled
    # p-value is its floor, 1 / (draws + 1); balanced ones are not significant at all.
    assert sign_flip_p_value([1.0] * 30) == pytest.approx(1 / (RANDOM_SIGN_FLIPS + 1))
    balanced = [(-1.0) ** i * (1 + i % 3) for i in range(30)]
    assert sign_flip_p_value(balanced) > 0.5
    assert sign_flip_p_value(balanced) == sign_flip_p_value(balanced)  # seeded


def test_holm_adjusts_step_down_and_keeps_the_order():
    # Sorted 0.005, 0.01, 0.03, 0.04 -> 4 x 0.005, 3 x 0.01, 2 x 0.03, max(that, 1 x 0.04).
    assert holm_adjusted([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjusted([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm_adjusted([0.02]) == [0.02] and holm_adjusted([]) == []


def test_bootstrap_ratio_interval_resamples_items_with_their_parts():
    # Every item the same ratio: so is every resample. Mixed items: the pooled ratio lies inside,
    # the interval inside the items' own extremes, and it narrows as items (of the same spread) grow.
    assert bootstrap_ratio_interval([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == pytest.approx((0.5, 0.5))
    numerators, denominators = [1.0, 3.0, 2.0, 5.0], [2.0, 2.0, 4.0, 5.0]
    low, high = bootstrap_ratio_interval(numerators, denominators)
    assert 0.5 <= low < sum(numerators) / sum(denominators) < high <= 1.5
    assert bootstrap_ratio_interval(numerators, denominators) == (low, high)  # seeded
    wide_low, wide_high = bootstrap_ratio_interval(numerators * 8, denominators * 8)
    assert high - low > wide_high - wide_low > 0
    assert bootstrap_ratio_interval([1.0], [2.0]) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's all-nan warning included
        assert bootstrap_ratio_interval([0.0, 0.0], [0.0, 0.0]) is None  # a perfect oracle: no ratio
        # a resample that draws only the zero item has no ratio and is left out, not counted as nan
        assert bootstrap_ratio_interval([0.0, 1.0], [0.0, 2.0]) == pytest.approx((0.5, 0.5))
    with pytest.raises(ValueError, match="2 numerators against 3 denominators"):
        bootstrap_ratio_interval([1.0, 2.0], [1.0, 2.0, 3.0])


def test_bootstrap_ratio_interval_resamples_shared_videos_as_one():
    # Twelve pairs in which four driving videos each drive three sources: a video's three pairs
    # err alike, so drawing videos moves the ratio far more than drawing pairs one by one would.
    numerators = [0.2, 0.25, 0.22, 0.5, 0.55, 0.52, 0.3, 0.32, 0.35, 0.6, 0.58, 0.62]
    denominators = [1.0] * 12
    clusters = [(f"source{i}", f"driving{i // 3}") for i in range(12)]
    by_pairs = bootstrap_ratio_interval(numerators, denominators)
    by_videos = bootstrap_ratio_interval(numerators, denominators, clusters=clusters)
    assert by_videos[0] < by_pairs[0] < sum(numerators) / 12 < by_pairs[1] < by_videos[1]
    assert bootstrap_ratio_interval(numerators, denominators, clusters=clusters) == by_videos  # seeded
    # Each pair its own video: the same as resampling the pairs (what no clusters means).
    alone = bootstrap_ratio_interval(numerators, denominators, clusters=[(i,) for i in range(12)])
    assert alone == pytest.approx(by_pairs, abs=0.02)
    with pytest.raises(ValueError, match="11 clusters for 12 items"):
        bootstrap_ratio_interval(numerators, denominators, clusters=clusters[:11])


def test_paired_difference_of_identical_or_balanced_samples_is_not_significant():
    same = paired_difference([0.3, 0.5, 0.7], [0.3, 0.5, 0.7])
    assert same.mean == 0 and same.std == 0 and (same.ci_low, same.ci_high) == (0, 0)
    assert same.verdict == "no significant difference" and same.t_p_value == 1 and same.permutation_p_value == 1
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


def test_the_temporal_filter_steadies_noise_and_keeps_a_straight_track():
    generator = torch.Generator().manual_seed(0)
    line = torch.linspace(-0.5, 0.5, 20)[:, None, None].expand(20, 3, 2)
    noisy = line + 0.02 * torch.randn(20, 3, 2, generator=generator)
    assert smooth_tracks(line.numpy())[1:-1] == pytest.approx(line.numpy()[1:-1])
    assert keypoint_acceleration(smooth_tracks(noisy), 64) < 0.5 * keypoint_acceleration(noisy, 64)


# --- the variants and the comparisons fixed before the runs ---------------------------------------


def test_variant_configs_differ_only_where_stated():
    base = load_config(CONFIGS / "sprites-64.yaml")
    configs = {key: variant_config(base, variant, budget=7, seed=3) for key, variant in VARIANTS.items()}
    assert configs["a"].model_params.common_params.estimate_jacobian is False
    assert configs["a"].train_params.loss_weights.equivariance_jacobian == 0
    assert configs["b"].model_params.generator_params.estimate_occlusion_map is False
    assert configs["c"].model_params == base.model_params == configs["j"].model_params
    assert configs["d"].model_params.graph_params is not None and configs["c"].model_params.graph_params is None
    for key in "ef":
        assert configs[key].train_params.loss_weights.flow_consistency > 0
        assert configs[key].dataset_params.nearby_pair_ratio > 0
    # The controls change only what their variant adds besides the thing tested.
    assert configs["i"].dataset_params.nearby_pair_ratio == configs["e"].dataset_params.nearby_pair_ratio
    assert configs["i"].train_params.loss_weights.flow_consistency == 0
    assert configs["h"].model_params.graph_params is None
    assert configs["h"].model_params.kp_detector_params.max_features > base.model_params.kp_detector_params.max_features
    assert configs["f"].model_params.graph_params is not None
    for config in configs.values():
        assert config.train_params.seed == 3 and config.train_params.epoch_milestones == []
        assert config.train_params.num_epochs > 7  # the budget, not the epochs, ends training
    assert base.train_params.seed == 0  # the base config is not modified


def test_the_graphs_control_spends_as_many_parameters_elsewhere():
    base = load_config(CONFIGS / "sprites-64.yaml")

    def detector_parameters(key: str) -> int:
        model = build_model(variant_config(base, VARIANTS[key], budget=1, seed=0))
        return sum(p.numel() for p in model.kp_detector.parameters())

    plain, graph, control = detector_parameters("c"), detector_parameters("d"), detector_parameters("h")
    assert graph > plain and control > plain
    assert abs((control - plain) - (graph - plain)) < 0.05 * (graph - plain)


def test_the_seed_graph_variant_uses_the_seed_style():
    base = load_config(CONFIGS / "sprites-64.yaml")
    config = variant_config(base, VARIANTS["g"], budget=5, seed=2)
    graph = config.model_params.graph_params
    assert graph is not None and graph.style == "seed" and graph.mix_weight == 0.3 and graph.num_heads == 1
    improved = variant_config(base, VARIANTS["d"], budget=5, seed=2).model_params.graph_params
    assert improved is not None and improved.style == "improved" and improved.mix_weight == 0.5
    assert VARIANTS["g"].folder == "g-fomm-graph-seed"


def test_the_preregistered_family_is_small_enough_for_eight_seeds():
    assert len(PREREGISTERED) == 6 and all(c.preregistered and c.hypothesis for c in PREREGISTERED)
    # Holm's first step multiplies the smallest p-value by the family's size: with 8 seeds the
    # permutation test's smallest p (2 / 2^8) must survive it.
    assert len(PREREGISTERED) * 2 / 2 ** 8 < 0.05 <= len(PREREGISTERED) * 2 / 2 ** 7
    for comparison in PREREGISTERED:
        assert comparison.variant in VARIANTS and comparison.reference in VARIANTS
    with pytest.raises(UserError, match="evaluates the runs of c"):
        check_variants(["a", "j"])


# --- the experiment over seeds ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """Variants a and c, and the temporal filter of c's models (j): two seeds, two iterations per
    run, on a tiny sprites dataset with two cross pairs."""
    out = tmp_path_factory.mktemp("variants")
    threads = torch.get_num_threads()
    messages: list[str] = []
    try:
        result = run_variants_experiment("sprites", 2, out, seeds=2, variants=["j", "a", "c"], log=messages.append,
                                         **TINY)
    finally:
        torch.set_num_threads(threads)
    return out, result, messages


def test_runs_are_laid_out_per_variant_and_seed(experiment):
    out, result, _ = experiment
    for folder in ("a-zeroth-order", "c-fomm", "j-fomm-temporal-filter"):
        for seed in (0, 1):
            run = out / "runs" / folder / f"seed-{seed}"
            assert json.loads((run / "result.json").read_text())["seed"] == seed
            assert (run / "checkpoint.pth.tar").is_file() == (folder != "j-fomm-temporal-filter")
    for name in ("table.md", "table.csv", "runs.csv", "results.json", "loss_curves.png", "metrics.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    # j evaluates c's models, so it runs after c whatever the order asked.
    assert [(r.key, r.seed) for r in result.runs] == [(k, s) for k in "acj" for s in (0, 1)]
    c0, c1 = result.runs_of("c")
    assert c0.metrics["L1"] != c1.metrics["L1"]  # different training seeds, different runs
    assert c0.settings["self_reconstruction"]["dataset"] == c1.settings["self_reconstruction"]["dataset"]
    # The variant's own loss terms are what it trained with.
    assert "equivariance_jacobian" in c0.losses[0] and "equivariance_jacobian" not in result.runs_of("a")[0].losses[0]


def test_every_run_is_measured_on_the_task_and_the_filter_only_on_keypoints(experiment):
    _, result, _ = experiment
    for run in result.runs_of("a") + result.runs_of("c"):
        assert 0 < run.metrics["cross_L1_moving"] and 0 < run.metrics["cross_L1_moving_oracle"]
        assert run.metrics["cross_L1_moving_repeat_source"] > 0 and run.metrics["cross_pose_error"] > 0
        assert run.settings["cross_identity"]["pairs"] == 2
    for run, source in zip(result.runs_of("j"), result.runs_of("c")):
        assert run.metrics["L1"] is None and run.metrics["cross_L1_moving"] is None
        assert run.metrics["kp_acceleration"] < source.metrics["kp_acceleration"]  # the filter steadies
        assert run.settings["self_reconstruction"]["keypoint_filter"] == "smooth_tracks"


def test_the_table_starts_with_no_motion_and_names_its_split(experiment):
    out, result, _ = experiment
    table = (out / "table.md").read_text()
    assert "test split" in table and "Evaluated on the **test** split." in table
    c_l1 = [run.metrics["L1"] for run in result.runs_of("c")]
    mean, std = sum(c_l1) / 2, abs(c_l1[0] - c_l1[1]) / math.sqrt(2)
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[1].startswith("| no motion (source repeated) |")
    baseline = result.runs_of("c")[0].metrics["L1_first_frame"]
    assert rows[1].split(" | ")[1] == f"{baseline:.4f}"
    c_row = next(line for line in rows if line.startswith("| (c) fomm |"))
    assert c_row.split(" | ")[1] == f"{mean:.4f} ± {std:.4f}"
    with open(out / "table.csv") as handle:
        table_rows = list(csv.DictReader(handle))
    assert [row["key"] for row in table_rows] == ["0", "a", "c", "j"] and table_rows[2]["seeds"] == "0 1"
    assert float(table_rows[2]["L1"]) == pytest.approx(mean) and float(table_rows[2]["L1_std"]) == pytest.approx(std)
    assert float(table_rows[0]["cross_L1_moving"]) == result.runs[0].metrics["cross_L1_moving_repeat_source"]


def test_comparisons_are_preregistered_and_holm_adjusted_or_marked_exploratory(experiment):
    out, result, _ = experiment
    data = json.loads((out / "results.json").read_text())
    registered, exploratory = data["preregistered"], data["exploratory"]
    # Of the six, only "zeroth-order vs first-order" has both its variants here.
    assert [(c["variant"], c["reference"], c["metric"]) for c in registered] == [("a", "c", "cross_L1_moving")]
    only = registered[0]
    runs = {(run.key, run.seed): run.metrics["cross_L1_moving"] for run in result.runs}
    expected = sum(runs["a", s] - runs["c", s] for s in (0, 1)) / 2
    assert only["difference"]["mean"] == pytest.approx(expected) and only["seeds"] == [0, 1]
    # A family of one: Holm leaves the p-values as they are. Two seeds cannot reach 5 % by
    # permutation (smallest p = 2 / 2^2), so no verdict can be "lower" or "higher".
    assert only["holm_t_p"] == pytest.approx(only["difference"]["t_p_value"])
    assert only["holm_permutation_p"] == only["difference"]["permutation_p_value"] == 1.0
    assert only["verdict"] in ("inconclusive", "not established (tests disagree)")
    assert all(not c["preregistered"] and c["verdict"] in ("exploratory", "n/a") for c in exploratory)
    pairs = {(c["variant"], c["reference"], c["metric"]) for c in exploratory}
    assert ("a", "c", "L1") in pairs and ("j", "c", "jitter") in pairs and ("a", "c", "cross_L1_moving") not in pairs
    table = (out / "table.md").read_text()
    assert "## Pre-registered comparisons (test split; one family of 1, Holm–Bonferroni" in table
    assert "## Exploratory comparisons (test split; not adjusted" in table


def test_a_rerun_reuses_the_runs_and_more_seeds_train_only_the_new_ones(experiment):
    out, result, _ = experiment
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
    assert again.runs_of("c")[0].metrics == result.runs_of("c")[0].metrics
    # Another process can take later seeds of the same experiment: same data seed, same dataset.
    messages.clear()
    try:
        later = run_variants_experiment("sprites", 2, out, seed=1, seeds=2, data_seed=0, variants=["c"],
                                        log=messages.append, **TINY)
    finally:
        torch.set_num_threads(threads)
    assert [run.seed for run in later.runs] == [1, 2] and later.data_seed == 0
    assert not any("training" in m for m in messages)


def test_the_other_families_are_variants_on_the_same_data_and_budget(tmp_path):
    """TPSMM (k) and MRAA (l) beside FOMM (c): each trains its own model from its own sprites config
    for the same budget on the same data and is judged by the same evaluations."""
    threads = torch.get_num_threads()
    try:
        result = run_variants_experiment("sprites", 2, tmp_path, seeds=1, variants=["c", "k", "l"], **TINY)
    finally:
        torch.set_num_threads(threads)
    families = {"c": FommModel, "k": TpsmmModel, "l": MraaModel}
    for key, model_class in families.items():
        (run,) = result.runs_of(key)
        assert run.steps == 2 and run.metrics["L1"] > 0 and run.metrics["cross_L1_moving"] > 0
        assert run.metrics["keypoint_error"] is not None and run.metrics["cross_pose_error"] > 0
        folder = tmp_path / "runs" / VARIANTS[key].folder / "seed-0"
        assert isinstance(load_checkpoint(folder / "checkpoint.pth.tar", device="cpu"), model_class)
    roots = {run.settings["self_reconstruction"]["dataset"] for run in result.runs}
    assert len(roots) == 1  # one dataset for all
    counts = result.settings["parameters"]
    assert set(counts["k"]) >= {"kp_detector", "dense_motion_network", "inpainting_network"}
    assert set(counts["l"]) >= {"region_predictor", "generator"} and set(counts["c"]) == {"kp_detector", "generator"}


# --- the learning curve ---------------------------------------------------------------------------


def test_the_curve_chooses_on_the_validation_split_by_default():
    args = build_parser("experiment").parse_args(["experiment", "curve", "--dataset", "sprites", "--budget", "4",
                                                  "--every", "2"])
    assert args.split == "validation"
    args = build_parser("benchmark").parse_args(["benchmark", "quality", "--dataset", "sprites", "--budget", "4"])
    assert args.split == "test" and args.experiment == "quality"


def test_learning_curve_evaluates_every_n_iterations_and_resumes(experiment, capsys):
    out, result, _ = experiment  # the experiment's folder: same dataset and landmark detector
    threads = torch.get_num_threads()
    try:
        code = main(["experiment", "curve", "--dataset", "sprites", "--budget", "3", "--every", "2", "--split", "test",
                     "--out", str(out)] + TINY_ARGS)
        assert code == 0
        first = capsys.readouterr()
        code = main(["benchmark", "curve", "--dataset", "sprites", "--budget", "3", "--every", "2", "--split", "test",
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
    assert "evaluated on the test split" in (out / "curve.md").read_text()
    with open(out / "curve.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["step"] for row in rows] == ["0", "2", "3"]
    assert rows[0]["train_perceptual"] == "" and float(rows[1]["train_perceptual"]) > 0
    # Step 2 of the curve is the experiment's run of (c) with seed 0 at a budget of 2.
    assert float(rows[1]["L1"]) == pytest.approx(result.runs_of("c")[0].metrics["L1"], rel=1e-6)
    assert float(rows[1]["cross_L1_moving"]) == pytest.approx(result.runs_of("c")[0].metrics["cross_L1_moving"],
                                                              rel=1e-6)
    assert float(rows[1]["L1"]) != float(rows[0]["L1"])  # two steps of training moved the untrained model
    assert "| step | train s | L1 |" in first.out and "First step within 5 %" in first.out


def test_cli_rejects_bad_counts(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "variants", "--dataset", "sprites", "--budget", "1", "--out", str(tmp_path),
              "--seeds", "0"])
    assert exit_info.value.code == 2 and "--seeds: must be at least 1" in capsys.readouterr().err
    code = main(["experiment", "curve", "--dataset", "sprites", "--budget", "4", "--every", "0",
                 "--out", str(tmp_path)])
    assert code == 2 and "--every must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["experiment", "curve", "--dataset", "sprites", "--budget", "4", "--every", "2", "--variant", "j",
              "--out", str(tmp_path)])
    assert "invalid choice: 'j'" in capsys.readouterr().err  # the filter trains nothing: no curve
    assert not (tmp_path / "dataset").exists()  # nothing was generated for a rejected command


def test_the_experiment_rejects_unknown_variants(tmp_path, capsys):
    code = main(["experiment", "variants", "--dataset", "sprites", "--budget", "1", "--out", str(tmp_path),
                 "--variants", "c,z"])
    assert code == 2
    assert "unknown variant(s) z" in capsys.readouterr().err
