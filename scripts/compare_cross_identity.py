"""Compare two models pair by pair on the same cross-identity split.

    fomm evaluate --cross-identity --checkpoint a.pth.tar --dataset data/test-2002 --out eval-a/
    fomm evaluate --cross-identity --checkpoint b.pth.tar --dataset data/test-2002 --out eval-b/
    .venv/bin/python scripts/compare_cross_identity.py eval-a/ eval-b/ --column l1_moving

Reads the ``per_pair.csv`` that ``fomm evaluate --cross-identity --out`` writes for each model,
matches the pairs by name and checks that they are the same pairs (the repeat-the-source L1 of
each, which depends on the data alone, must agree), and prints, for the chosen column, each
model's mean, the mean of the per-pair differences A - B, its Student t interval and p-value, and
the exact sign-flip permutation p-value (:mod:`fomm.evaluation.statistics`), and an interval of the
mean difference with the split's *videos* resampled (a pair, named ``<source>-by-<driving>``,
counted as often as both its videos were drawn). Both tests take the pairs as independent, and the
pairs of a split share videos; a verdict is only stated where both tests agree and the videos'
interval excludes 0. Several pairs of folders (A1 B1 A2 B2 ...) are one family of
comparisons: each is printed, then both tests' p-values Holm-adjusted over the family, with the
verdicts on the adjusted values.

    .venv/bin/python scripts/compare_cross_identity.py eval-a-2002/ eval-b-2002/ eval-a-3003/ eval-b-3003/

The pairs are the unit here: the comparison says whether A beats B *on these pairs*, for these two
trained models. It says nothing about a training recipe run again with another seed.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import Optional

from fomm.data.synthetic.cross_pairs import pair_videos
from fomm.errors import DataError, UserError
from fomm.evaluation.statistics import (EXACT_PERMUTATION_LIMIT, RANDOM_SIGN_FLIPS, PairedDifference,
                                        bootstrap_ratio_interval, holm_adjusted, paired_difference)

PER_PAIR_FILE = "per_pair.csv"
# Written in full precision by the evaluation, so the same split gives the same value to the last digit.
DATA_ONLY_COLUMN = "repeat_l1"


def read_column(folder: Path, column: str) -> dict[str, float]:
    """``{pair name: value}`` of ``column`` in ``folder/per_pair.csv``. Raises DataError for a
    missing file, a column it does not have, or a pair without a number there (n/a is written
    empty)."""
    path = folder / PER_PAIR_FILE
    if not path.is_file():
        raise DataError(f"{path}: not found (write it with `fomm evaluate --cross-identity --out {folder}`)")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise DataError(f"{path}: no pairs in it")
    if column not in rows[0]:
        numeric = [name for name in rows[0] if name not in ("name", "frames")]
        raise UserError(f"--column {column}: {path} has no such column (it has {', '.join(numeric)})")
    values = {}
    for row in rows:
        if row[column] == "":
            raise DataError(f"{path}: pair {row['name']} has no {column} value (n/a)")
        try:
            values[row["name"]] = float(row[column])
        except ValueError:
            raise DataError(f"{path}: pair {row['name']} has {row[column]!r} for {column}, not a number") from None
    return values


def check_same_pairs(a_folder: Path, b_folder: Path) -> None:
    """Raises DataError unless both evaluations hold the same pairs: the same names (not two
    different splits, nor one cut short by ``--num-videos``) with the same data behind them (pair
    names repeat between splits of different seeds; the repeat-the-source L1 tells them apart)."""
    a, b = read_column(a_folder, DATA_ONLY_COLUMN), read_column(b_folder, DATA_ONLY_COLUMN)
    if set(a) != set(b):
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        raise DataError(f"the two evaluations hold different pairs: only in A {only_a[:3]}, only in B {only_b[:3]} "
                        f"({len(only_a)} and {len(only_b)} in all); compare evaluations of the same split")
    differing = [name for name in sorted(a) if not math.isclose(a[name], b[name], rel_tol=1e-9, abs_tol=1e-12)]
    if differing:
        raise DataError(f"pair {differing[0]} is not the same video in both evaluations (its repeat-the-source L1 "
                        f"is {a[differing[0]]!r} in A, {b[differing[0]]!r} in B; {len(differing)} pairs differ): "
                        f"compare evaluations of the same split")


def compare(a: dict[str, float], b: dict[str, float], confidence: float) -> PairedDifference:
    """The paired difference A - B over the pairs (the same names in both; see
    :func:`check_same_pairs`)."""
    names = sorted(a)
    return paired_difference([a[name] for name in names], [b[name] for name in names], confidence)


def videos_interval(a: dict[str, float], b: dict[str, float], confidence: float) -> Optional[tuple[float, float]]:
    """Percentile bootstrap interval of the mean of A - B over the pairs, the videos resampled
    (:func:`~fomm.evaluation.statistics.bootstrap_ratio_interval` with unit denominators: the
    weighted mean). None for a single pair."""
    names = sorted(a)
    return bootstrap_ratio_interval([a[name] - b[name] for name in names], [1.0] * len(names), confidence,
                                    clusters=[pair_videos(name) for name in names])


def verdict(difference: PairedDifference, t_p: Optional[float], sign_flip_p: Optional[float], alpha: float,
            interval: Optional[tuple[float, float]] = None) -> str:
    """``A is lower`` / ``A is higher`` only where both tests' p-values (adjusted or not) are below
    ``alpha`` and the videos' ``interval`` (when given) excludes 0; otherwise why not. The p-values
    are None only for a single pair (no test)."""
    if difference.ci_low is None or t_p is None or sign_flip_p is None:
        return f"{difference.verdict} ({difference.note})"
    if (t_p < alpha) != (sign_flip_p < alpha):
        return "the two tests disagree: no verdict"
    if t_p >= alpha:
        return "no significant difference"
    if interval is not None and interval[0] <= 0 <= interval[1]:
        return "significant by both tests, not with the videos resampled: no verdict"
    return "A is lower" if difference.mean < 0 else "A is higher"


def _sign_flip_name(pairs: int) -> str:
    if pairs <= EXACT_PERMUTATION_LIMIT:
        return "exact sign-flip p"
    return f"sign-flip p ({RANDOM_SIGN_FLIPS:,} random assignments)"


def report(label: str, column: str, a: dict[str, float], b: dict[str, float], difference: PairedDifference) -> str:
    """One comparison as a few lines of text, its verdict unadjusted."""
    interval = videos_interval(a, b, difference.confidence)
    def mean(values: dict[str, float]) -> float:
        return math.fsum(values.values()) / len(values)

    lines = [f"{label}: {column} over {difference.n} pairs: A {mean(a):.4f}, B {mean(b):.4f}",
             f"A - B: {difference.mean:+.4f} (std {difference.std:.4f})" if difference.std is not None
             else f"A - B: {difference.mean:+.4f}"]
    if difference.ci_low is not None:
        lines += [f"{difference.confidence:.0%} t interval: [{difference.ci_low:+.4f}, {difference.ci_high:+.4f}], "
                  f"t test p = {difference.t_p_value:.4f}",
                  f"{_sign_flip_name(difference.n)} = {difference.permutation_p_value:.4f}"]
    if interval is not None:
        lines.append(f"{difference.confidence:.0%} interval, videos resampled: [{interval[0]:+.4f}, {interval[1]:+.4f}]")
    alpha = 1 - difference.confidence
    # Not `p or 1.0`: every difference equal and non-zero gives a t p-value of exactly 0.
    lines.append("verdict: " + verdict(difference, difference.t_p_value, difference.permutation_p_value, alpha,
                                       interval))
    return "\n".join(lines)


def holm_report(labels: list[str], differences: list[PairedDifference], alpha: float,
                values: list[tuple[dict[str, float], dict[str, float]]]) -> str:
    """The comparisons as one family: each test's p-values Holm-adjusted over the family, the
    videos' intervals at Bonferroni's level (``1 - alpha / m``), and the verdicts on those.
    ``values``: each comparison's A and B values by pair."""
    t_adjusted = holm_adjusted([d.t_p_value if d.t_p_value is not None else 1.0 for d in differences])
    flip_adjusted = holm_adjusted([d.permutation_p_value if d.permutation_p_value is not None else 1.0
                                   for d in differences])
    level = 1 - alpha / len(differences)
    lines = [f"Holm-Bonferroni over the {len(differences)} comparisons (family-wise error at most {alpha:g}):",
             f"comparison  A - B    t p (Holm)  sign-flip p (Holm)  videos' {level:.1%} interval  verdict"]
    for label, difference, t_p, flip_p, (a, b) in zip(labels, differences, t_adjusted, flip_adjusted, values):
        interval = videos_interval(a, b, level)
        shown = f"[{interval[0]:+.4f}, {interval[1]:+.4f}]" if interval is not None else "n/a"
        lines.append(f"{label:<11} {difference.mean:+.4f}  {t_p:.4f}      {flip_p:.4f}              {shown:<22}  "
                     f"{verdict(difference, t_p, flip_p, alpha, interval)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", metavar="A B",
                        help="the --out folders of two `fomm evaluate --cross-identity` runs on the same split, "
                             "model A's then model B's; several such pairs of folders are one family of "
                             "comparisons, Holm-adjusted")
    parser.add_argument("--column", default="l1_moving", help="a column of per_pair.csv (default l1_moving)")
    parser.add_argument("--confidence", type=float, default=0.95)
    args = parser.parse_args(argv)
    try:
        if len(args.folders) % 2:
            raise UserError(f"{len(args.folders)} folders: give them in pairs, model A's then model B's")
        labels, differences, values = [], [], []
        for index in range(0, len(args.folders), 2):
            a_folder, b_folder = args.folders[index], args.folders[index + 1]
            check_same_pairs(a_folder, b_folder)
            a, b = read_column(a_folder, args.column), read_column(b_folder, args.column)
            labels.append(f"#{index // 2 + 1}")
            differences.append(compare(a, b, args.confidence))
            values.append((a, b))
            print(f"{labels[-1]}: A = {a_folder}, B = {b_folder}")
            print(report(labels[-1], args.column, a, b, differences[-1]))
            print()
        if len(differences) > 1:
            print(holm_report(labels, differences, 1 - args.confidence, values))
    except (UserError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
