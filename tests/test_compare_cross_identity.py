"""scripts/compare_cross_identity.py: two models compared pair by pair on one cross-identity split."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from fomm.evaluation.cross_identity import PairMetrics
from fomm.evaluation.results import EvaluationResult
from tests.script_modules import load_script, script_path

SCRIPT = script_path("compare_cross_identity")
compare_cross_identity = load_script("compare_cross_identity")


def write_evaluation(folder: Path, l1_moving: list[float], repeat_l1: list[float], names: list[str] | None = None,
                     appearance: float | None = None) -> Path:
    """A cross-identity evaluation's output folder, written by the evaluation's own writer."""
    names = names or [f"sprite{i:05d}-by-sprite{i + 1:05d}" for i in range(len(l1_moving))]
    pairs = [PairMetrics(name=name, frames=32, moving_fraction=0.2, l1=value / 5, l1_moving=value,
                         repeat_l1=repeat, repeat_l1_moving=0.2, oracle_l1=0.01, oracle_l1_moving=0.07,
                         appearance=appearance)
             for name, value, repeat in zip(names, l1_moving, repeat_l1)]
    EvaluationResult(metrics=[], videos=pairs, row_kind="pair").write(folder)
    return folder


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


REPEAT = [0.031, 0.035, 0.029, 0.040, 0.033, 0.037]


def test_a_model_lower_on_every_pair_is_lower_by_both_tests(tmp_path):
    b_values = [0.090, 0.085, 0.101, 0.079, 0.094, 0.088]
    gaps = [0.004, 0.002, 0.006, 0.001, 0.003, 0.005]
    a = write_evaluation(tmp_path / "a", [v - g for v, g in zip(b_values, gaps)], REPEAT)
    b = write_evaluation(tmp_path / "b", b_values, REPEAT)

    result = run_script(str(a), str(b))

    assert result.returncode == 0, result.stderr
    mean_gap = sum(gaps) / len(gaps)
    assert f"A - B: {-mean_gap:+.4f}" in result.stdout
    # Six differences of one sign: only the observed assignment and its mirror are as extreme.
    assert f"exact sign-flip p = {2 / 2 ** 6:.4f}" in result.stdout
    assert result.stdout.strip().endswith("verdict: A is lower")


def test_the_same_gap_on_every_pair_is_a_verdict(tmp_path):
    # No spread at all: the t test's p-value is exactly 0, and the sign-flip test's 2/64.
    b_values = [0.090, 0.085, 0.101, 0.079, 0.094, 0.088]
    a = write_evaluation(tmp_path / "a", [v + 0.0025 for v in b_values], REPEAT)
    b = write_evaluation(tmp_path / "b", b_values, REPEAT)

    result = run_script(str(a), str(b))

    assert result.returncode == 0, result.stderr
    assert "t test p = 0.0000" in result.stdout
    assert result.stdout.strip().endswith("verdict: A is higher")


def test_a_difference_carried_by_one_video_is_no_verdict(tmp_path):
    # Eight of twelve pairs are driven by one video and A is far lower on each; on the other four,
    # driven by two other videos, A is a little higher. Taken as independent pairs, both tests
    # say "A is lower"; with the videos resampled, a draw without that one video reverses it.
    names = [f"source{i:02d}-by-{'driving0' if i < 8 else f'driving{1 + i % 2}'}" for i in range(12)]
    gaps = [-0.020, -0.019, -0.021, -0.018, -0.022, -0.020, -0.019, -0.021, 0.002, 0.001, 0.002, 0.001]
    b_values = [0.09 + 0.001 * i for i in range(12)]
    repeat = [0.03 + 0.001 * i for i in range(12)]
    a = write_evaluation(tmp_path / "a", [v + g for v, g in zip(b_values, gaps)], repeat, names=names)
    b = write_evaluation(tmp_path / "b", b_values, repeat, names=names)

    result = run_script(str(a), str(b))

    assert result.returncode == 0, result.stderr
    t_p = float(re.search(r"t test p = ([0-9.]+)", result.stdout).group(1))
    flip_p = float(re.search(r"exact sign-flip p = ([0-9.]+)", result.stdout).group(1))
    low, high = map(float, re.search(r"videos resampled: \[([-+0-9.]+), ([-+0-9.]+)\]", result.stdout).groups())
    assert t_p < 0.05 and flip_p < 0.05 and low < 0 < high
    assert result.stdout.strip().endswith("not with the videos resampled: no verdict")


def test_a_split_of_more_than_twenty_pairs_is_compared_with_sampled_sign_flips(tmp_path):
    b_values = [0.08 + 0.001 * i for i in range(24)]
    repeat = [0.03 + 0.0005 * i for i in range(24)]
    a = write_evaluation(tmp_path / "a", [v - 0.002 - 0.0001 * (i % 5) for i, v in enumerate(b_values)], repeat)
    b = write_evaluation(tmp_path / "b", b_values, repeat)

    result = run_script(str(a), str(b))

    assert result.returncode == 0, result.stderr
    assert "l1_moving over 24 pairs" in result.stdout
    assert "sign-flip p (200,000 random assignments) = 0.0000" in result.stdout
    assert result.stdout.strip().endswith("verdict: A is lower")


def test_mixed_signs_give_no_verdict(tmp_path):
    b_values = [0.090, 0.085, 0.101, 0.079, 0.094, 0.088]
    a = write_evaluation(tmp_path / "a", [v + d for v, d in zip(b_values, [0.004, -0.003, 0.002, -0.004, 0.001, -0.002])],
                         REPEAT)
    b = write_evaluation(tmp_path / "b", b_values, REPEAT)

    a_values = compare_cross_identity.read_column(a, "l1_moving")
    b_values_read = compare_cross_identity.read_column(b, "l1_moving")
    difference = compare_cross_identity.compare(a_values, b_values_read, 0.95)

    assert difference.n == 6
    assert difference.ci_low < 0 < difference.ci_high
    assert difference.permutation_p_value > 0.5
    assert compare_cross_identity.report("#1", "l1_moving", a_values, b_values_read, difference).endswith(
        "verdict: no significant difference")


def test_several_comparisons_are_one_family_holm_adjusted(tmp_path):
    # Each comparison alone: six differences of one sign, sign-flip p = 2/64 < 0.05. As a family of
    # two, Holm doubles the smaller p-value: 4/64 > 0.05, so the sign-flip test no longer rejects
    # and no verdict survives (the t test, with p far smaller, still would: the two disagree).
    b_values = [0.090, 0.085, 0.101, 0.079, 0.094, 0.088]
    folders = []
    for split, gaps in (("2002", [0.004, 0.002, 0.006, 0.001, 0.003, 0.005]),
                        ("3003", [0.003, 0.003, 0.002, 0.004, 0.001, 0.002])):
        folders += [write_evaluation(tmp_path / f"a-{split}", [v - g for v, g in zip(b_values, gaps)], REPEAT),
                    write_evaluation(tmp_path / f"b-{split}", b_values, REPEAT)]

    result = run_script(*map(str, folders))

    assert result.returncode == 0, result.stderr
    assert result.stdout.count("verdict: A is lower") == 2  # each one unadjusted
    family = result.stdout.split("Holm-Bonferroni over the 2 comparisons")[1].splitlines()[2:]
    assert len(family) == 2
    for row in family:
        assert f"{4 / 64:.4f}" in row and row.endswith("the two tests disagree: no verdict")


def test_an_odd_number_of_folders_is_refused(tmp_path):
    a = write_evaluation(tmp_path / "a", [0.08] * 6, REPEAT)
    result = run_script(str(a), str(a), str(a))
    assert result.returncode == 2
    assert "3 folders: give them in pairs" in result.stderr


def test_two_splits_whose_pair_names_coincide_are_refused(tmp_path):
    # Splits of different seeds name their pairs alike; the data-only column tells them apart.
    a = write_evaluation(tmp_path / "a", [0.08] * 6, REPEAT)
    b = write_evaluation(tmp_path / "b", [0.09] * 6, REPEAT[:3] + [0.050] + REPEAT[4:])

    result = run_script(str(a), str(b))

    assert result.returncode == 2
    assert "sprite00003-by-sprite00004 is not the same video in both evaluations" in result.stderr


def test_different_pairs_are_refused_by_name(tmp_path):
    a = write_evaluation(tmp_path / "a", [0.08] * 6, REPEAT)
    b = write_evaluation(tmp_path / "b", [0.08] * 5, REPEAT[:5])  # cut short, as --num-videos 5 would

    result = run_script(str(a), str(b))

    assert result.returncode == 2
    assert "hold different pairs" in result.stderr and "(1 and 0 in all)" in result.stderr


@pytest.mark.parametrize("problem", ["missing folder", "unknown column", "n/a values", "not a number"])
def test_bad_input_gets_a_one_line_error(tmp_path, problem):
    a = write_evaluation(tmp_path / "a", [0.08] * 6, REPEAT)
    b = write_evaluation(tmp_path / "b", [0.09] * 6, REPEAT)
    if problem == "not a number":  # a file edited by hand
        table = (b / "per_pair.csv").read_text().splitlines()
        table[2] = table[2].replace(",0.09,", ",abc,", 1)
        (b / "per_pair.csv").write_text("\n".join(table) + "\n")
    args, expected = {
        "missing folder": ([str(a), str(tmp_path / "nowhere")], "per_pair.csv: not found"),
        "unknown column": ([str(a), str(b), "--column", "l1_movin"], "--column l1_movin: "),
        "n/a values": ([str(a), str(b), "--column", "appearance"], "has no appearance value (n/a)"),
        "not a number": ([str(a), str(b)], "pair sprite00001-by-sprite00002 has 'abc' for l1_moving, not a number"),
    }[problem]

    result = run_script(*args)

    assert result.returncode == 2
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    if problem == "unknown column":
        assert "l1_moving" in result.stderr  # the columns it does have are listed
