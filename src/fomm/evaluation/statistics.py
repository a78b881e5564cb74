"""Summaries over repeated runs: the mean and spread of a metric over seeds, paired differences,
and tests that a reviewer accepts for a family of comparisons.

Pure functions of plain numbers. The variants experiment trains every variant with the same seeds,
so two variants are compared seed by seed: the differences ``a[i] - b[i]`` of one seed share its
data order, augmentation draws and initial weights, and their spread is the noise that a claim must
beat. Three tools:

* :func:`paired_difference`: a Student t interval on the mean difference (``n - 1`` degrees of
  freedom) and the t test's two-sided p-value; it rests on the differences being roughly normal.
* :func:`sign_flip_p_value`: the paired permutation test (exact up to 20 pairs), which does not: under "no
  difference" each seed's difference is as likely positive as negative, so the p-value is the
  share of the ``2^n`` sign assignments whose mean difference is at least as far from 0 as the one
  observed. Its smallest possible value is ``2 / 2^n``: with 5 seeds 0.0625 (no verdict at 5 %
  can rest on it), with 8 seeds 0.0078.
* :func:`holm_adjusted`: Holm–Bonferroni's step-down adjustment of a family of p-values, which
  keeps the chance of any false "significant" in the family at the stated level.

One more for a single model on one dataset: :func:`bootstrap_ratio_interval`, how far a pooled
ratio (a model's error over a baseline's, summed over cross pairs) could move had other videos and
pairs of the same recipe been drawn.

Standard deviations are sample standard deviations (``n - 1`` in the denominator).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Hashable, Optional, Sequence

import numpy as np
from scipy import stats

__all__ = ["VERDICTS", "PairedDifference", "Summary", "bootstrap_ratio_interval", "holm_adjusted", "mean_std",
           "paired_difference", "random_sign_flip_p_value", "sign_flip_p_value", "t_quantile"]

#: Up to this many pairs the permutation test enumerates every sign assignment (2^20 ~ 1e6).
EXACT_PERMUTATION_LIMIT = 20
#: Above it, this many random sign assignments (the p-value's own sampling error is then below 0.001
#: at p = 0.05).
RANDOM_SIGN_FLIPS = 200_000

#: Verdicts of :func:`paired_difference`, for the first sample relative to the second.
VERDICTS = ("lower", "higher", "no significant difference", "undetermined")


@dataclass(frozen=True)
class Summary:
    """``mean`` and sample ``std`` of ``n`` values; ``std`` is None for a single value."""

    mean: float
    std: Optional[float]
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PairedDifference:
    """The mean of ``a - b`` over ``n`` pairs, its sample ``std``, and the two-sided Student t
    interval ``[ci_low, ci_high]`` at ``confidence``. ``verdict``: ``lower`` when the whole interval
    is below zero (``a`` is lower than ``b``), ``higher`` when above, ``no significant difference``
    when it contains zero, ``undetermined`` with fewer than two pairs (no interval; ``note`` says
    why)."""

    mean: float
    std: Optional[float]
    n: int
    confidence: float
    ci_low: Optional[float]
    ci_high: Optional[float]
    verdict: str
    note: str = ""
    t_p_value: Optional[float] = None
    permutation_p_value: Optional[float] = None

    def to_dict(self) -> dict:
        return asdict(self)


def mean_std(values: Sequence[float]) -> Summary:
    """Mean and sample standard deviation of ``values`` (at least one; NaN is not filtered)."""
    if len(values) == 0:
        raise ValueError("mean_std needs at least one value")
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return Summary(mean, None, n)
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return Summary(mean, math.sqrt(variance), n)


def t_quantile(probability: float, df: int) -> float:
    """The ``probability`` quantile of Student's t distribution with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"the t distribution needs at least 1 degree of freedom, got {df}")
    return float(stats.t.ppf(probability, df))


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedDifference:
    """Compare paired samples ``a`` and ``b`` (``a[i]`` and ``b[i]`` from the same seed).

    The interval is ``mean ± t_{(1+confidence)/2, n-1} · std / sqrt(n)`` of the differences
    ``a - b``. Raises ValueError for samples of different or zero length, or a confidence outside
    (0, 1).
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples must have the same length, got {len(a)} and {len(b)}")
    if len(a) == 0:
        raise ValueError("paired_difference needs at least one pair")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    differences = [float(x) - float(y) for x, y in zip(a, b)]
    summary = mean_std(differences)
    if summary.std is None:
        return PairedDifference(summary.mean, None, 1, confidence, None, None, "undetermined",
                                "one pair: no confidence interval (needs at least two seeds)")
    half_width = t_quantile((1 + confidence) / 2, summary.n - 1) * summary.std / math.sqrt(summary.n)
    low, high = summary.mean - half_width, summary.mean + half_width
    if high < 0:
        verdict = "lower"
    elif low > 0:
        verdict = "higher"
    else:
        verdict = "no significant difference"
    return PairedDifference(summary.mean, summary.std, summary.n, confidence, low, high, verdict,
                            t_p_value=_t_test_p_value(summary), permutation_p_value=sign_flip_p_value(differences))


def _t_test_p_value(summary: Summary) -> float:
    """Two-sided p-value of the one-sample t test of ``mean == 0`` (1 when every difference is 0)."""
    assert summary.std is not None
    if summary.std == 0:
        return 1.0 if summary.mean == 0 else 0.0
    statistic = summary.mean / (summary.std / math.sqrt(summary.n))
    return float(2 * stats.t.sf(abs(statistic), summary.n - 1))


def sign_flip_p_value(differences: Sequence[float], seed: int = 0) -> float:
    """Two-sided p-value of the paired permutation (sign-flip) test of "no difference".

    The statistic is ``|mean of the differences|``; the p-value is the share of the ``2^n`` ways of
    flipping the signs of the ``n`` differences that give a statistic at least as large (the
    observed assignment included, so it is never 0). Enumerated exactly up to
    :data:`EXACT_PERMUTATION_LIMIT` pairs; above, :data:`RANDOM_SIGN_FLIPS` assignments drawn
    at random (seeded) give ``(b + 1) / (draws + 1)``, ``b`` of them as extreme as the observed:
    a valid p-value (Phipson & Smyth 2010), slightly above the exact one.
    """
    values = np.asarray(differences, dtype=np.float64)
    n = len(values)
    if n == 0:
        raise ValueError("the permutation test needs at least one pair")
    if n > EXACT_PERMUTATION_LIMIT:
        return random_sign_flip_p_value(values, RANDOM_SIGN_FLIPS, seed)
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))  # (2^n, n)
    return float(np.mean(_as_extreme(signs @ values, values)))


def random_sign_flip_p_value(differences: Sequence[float], draws: int, seed: int = 0) -> float:
    """The sign-flip test's p-value from ``draws`` random sign assignments (see
    :func:`sign_flip_p_value`), in blocks so that memory stays small."""
    values = np.asarray(differences, dtype=np.float64)
    generator = np.random.default_rng(seed)
    extreme, done = 0, 0
    while done < draws:
        block = min(draws - done, 20_000)
        signs = generator.choice((1.0, -1.0), size=(block, len(values)))
        extreme += int(_as_extreme(signs @ values, values).sum())
        done += block
    return (extreme + 1) / (draws + 1)


def _as_extreme(sums: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which signed sums are at least as far from 0 as the observed one, with a relative
    tolerance so that assignments equal to the observed one up to rounding count."""
    return np.abs(sums) >= abs(values.sum()) * (1 - 1e-12) - 1e-300


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values of a family, in the order given.

    With the ``m`` p-values sorted ascending, ``p_(i)`` becomes ``max over j <= i of
    min(1, (m - j + 1) p_(j))``: comparing each adjusted value with ``alpha`` rejects exactly what
    Holm's step-down procedure rejects, and the chance of any false rejection in the family stays
    at most ``alpha``.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[index])))
        adjusted[index] = running
    return adjusted


def bootstrap_ratio_interval(numerators: Sequence[float], denominators: Sequence[float], confidence: float = 0.95,
                             resamples: int = 10_000, seed: int = 0,
                             clusters: Optional[Sequence[Sequence[Hashable]]] = None) -> Optional[tuple[float, float]]:
    """Percentile bootstrap interval of ``sum(numerators) / sum(denominators)`` (item ``i``
    contributes ``numerators[i]`` and ``denominators[i]`` together, e.g. one cross pair's summed
    error of the model and of a baseline). Deterministic for a ``seed``. None with fewer than two
    items (nothing to resample), or when the denominators sum to zero in every resample (a
    perfect oracle: no ratio to bound); resamples whose denominators sum to zero are left out.

    Item ``i`` is made of the units ``clusters[i]`` (a cross pair: its source video and its
    driving video; without ``clusters`` each item is its own unit), and the *units* are
    resampled with replacement: an item counts as often as the product of its units' draws (the
    pigeonhole bootstrap of crossed designs, Owen 2007). Items that share a unit, such as two
    pairs driven by one video, are not independent; resampling them as if they were gives an
    interval too narrow for what another draw of videos would give."""
    top, bottom = np.asarray(numerators, dtype=np.float64), np.asarray(denominators, dtype=np.float64)
    if top.shape != bottom.shape:
        raise ValueError(f"{top.size} numerators against {bottom.size} denominators")
    if clusters is not None and len(clusters) != top.size:
        raise ValueError(f"{len(clusters)} clusters for {top.size} items")
    if top.size < 2:
        return None
    units = clusters if clusters is not None else [(item,) for item in range(top.size)]
    weights = _unit_weights(units, resamples, np.random.default_rng(seed))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = (weights * top).sum(axis=1) / (weights * bottom).sum(axis=1)
    if np.isnan(ratios).all():
        return None
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(ratios, [tail, 100 - tail])
    return float(low), float(high)


def _unit_weights(clusters: Sequence[Sequence[Hashable]], resamples: int, generator: np.random.Generator
                  ) -> np.ndarray:
    """``(resamples, items)``: how many times each item counts in each resample of the units."""
    units = {unit: index for index, unit in enumerate(dict.fromkeys(unit for item in clusters for unit in item))}
    draws = generator.integers(0, len(units), size=(resamples, len(units)))
    counts = np.zeros((resamples, len(units)))
    np.add.at(counts, (np.arange(resamples)[:, None], draws), 1)
    weights = np.ones((resamples, len(clusters)))
    for item, members in enumerate(clusters):
        for unit in members:
            weights[:, item] *= counts[:, units[unit]]
    return weights
