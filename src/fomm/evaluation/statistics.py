"""Summaries over repeated runs: the mean and spread of a metric over seeds, and paired differences.

Pure functions of plain numbers. The benchmark trains every variant with the same seeds, so two
variants are compared seed by seed: the differences ``a[i] - b[i]`` of one seed share its data
order, augmentation draws and initial weights, and their spread is the noise that a claim must
beat. A Student t interval on the mean difference (``n - 1`` degrees of freedom) says whether it
does: :func:`paired_difference`.

Standard deviations are sample standard deviations (``n - 1`` in the denominator).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

from scipy import stats

__all__ = ["VERDICTS", "PairedDifference", "Summary", "mean_std", "paired_difference", "t_quantile"]

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
    return PairedDifference(summary.mean, summary.std, summary.n, confidence, low, high, verdict)
