"""The variants experiment's results: one run (:class:`VariantResult`), one comparison over seeds
(:class:`ComparisonResult`), and all runs together with their tables (:class:`VariantsResult`:
markdown, CSV, JSON).

How a verdict is reached (pre-registered comparisons only): for each, the paired t test and the
exact sign-flip permutation test (:mod:`fomm.evaluation.statistics`) give two-sided p-values; each
test's p-values are Holm–Bonferroni adjusted over the family of :data:`PREREGISTERED`; the verdict
is ``lower`` or ``higher`` when both adjusted p-values are below :data:`ALPHA`, ``inconclusive``
when neither is, and ``not established (tests disagree)`` otherwise. The 95 % t interval is printed
beside them, unadjusted. Exploratory comparisons print the same unadjusted figures and no verdict.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Optional

from ...evaluation.statistics import PairedDifference, Summary, holm_adjusted, mean_std, paired_difference
from .definitions import COLUMNS, NO_MOTION, PREREGISTERED, TITLES, VARIANTS, Comparison, exploratory_comparisons

__all__ = ["ALPHA", "CONFIDENCE", "ComparisonResult", "VariantResult", "VariantsResult", "format_summary",
           "format_value"]

#: Confidence of the printed t intervals, and the family-wise error rate of the verdicts.
CONFIDENCE = 0.95
ALPHA = 0.05


@dataclass
class VariantResult:
    """One run: a variant trained with one seed and evaluated. ``metrics`` holds the table's
    columns and the no-motion baseline's figures of the same evaluation (:data:`NO_MOTION`)."""

    key: str
    name: str
    description: str
    steps: int
    seconds: float
    metrics: dict[str, Optional[float]]
    notes: dict[str, str] = field(default_factory=dict)
    losses: list[dict[str, float]] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    seed: int = 0

    @property
    def label(self) -> str:
        return f"({self.key}) {self.name}"

    @property
    def seconds_per_iter(self) -> float:
        return self.seconds / max(self.steps, 1)

    def to_dict(self) -> dict:
        return {"key": self.key, "name": self.name, "description": self.description, "seed": self.seed,
                "steps": self.steps, "seconds": self.seconds, "metrics": self.metrics, "notes": self.notes,
                "losses": self.losses, "settings": self.settings}

    @classmethod
    def from_dict(cls, data: dict) -> "VariantResult":
        return cls(data["key"], data["name"], data["description"], int(data["steps"]), float(data["seconds"]),
                   dict(data["metrics"]), dict(data.get("notes", {})), list(data.get("losses", [])),
                   dict(data.get("settings", {})), int(data.get("seed", 0)))


@dataclass
class ComparisonResult:
    """A :class:`Comparison` over the ``seeds`` where both variants have the metric: the paired
    ``difference`` (variant minus reference; None when no seed has both, ``note`` says why) and,
    for a pre-registered comparison, both tests' Holm-adjusted p-values."""

    comparison: Comparison
    seeds: list[int]
    difference: Optional[PairedDifference]
    note: str = ""
    holm_t_p: Optional[float] = None
    holm_permutation_p: Optional[float] = None

    @property
    def verdict(self) -> str:
        if self.difference is None or self.difference.t_p_value is None:
            return "n/a"
        if not self.comparison.preregistered:
            return "exploratory"
        assert self.holm_t_p is not None and self.holm_permutation_p is not None
        t_says, permutation_says = self.holm_t_p < ALPHA, self.holm_permutation_p < ALPHA
        if t_says and permutation_says:
            return "lower" if self.difference.mean < 0 else "higher"
        if not t_says and not permutation_says:
            return "inconclusive"
        return "not established (tests disagree)"

    def to_dict(self) -> dict:
        c = self.comparison
        return {"comparison": c.title, "variant": c.variant, "reference": c.reference, "metric": c.metric,
                "preregistered": c.preregistered, "hypothesis": c.hypothesis, "seeds": self.seeds,
                "verdict": self.verdict, "holm_t_p": self.holm_t_p, "holm_permutation_p": self.holm_permutation_p,
                "difference": None if self.difference is None else self.difference.to_dict(), "note": self.note}


@dataclass
class VariantsResult:
    """Every run of the experiment (``runs``: each variant with each of ``seeds``) and what follows
    from them: per-variant summaries over seeds and the paired comparisons. ``split`` names the
    split the runs were evaluated on (``test``, or ``validation`` for choices)."""

    dataset: str
    kind: Optional[str]
    budget: int
    seeds: list[int]
    runs: list[VariantResult]
    settings: dict = field(default_factory=dict)
    confidence: float = CONFIDENCE
    split: str = "test"
    data_seed: Optional[int] = None

    def __post_init__(self) -> None:
        if self.data_seed is None:
            self.data_seed = self.seeds[0]

    @property
    def seed(self) -> int:
        """The first training seed (``--seed``)."""
        return self.seeds[0]

    def variant_keys(self) -> list[str]:
        """The variants that ran, in the order of their first run."""
        return list(dict.fromkeys(run.key for run in self.runs))

    def runs_of(self, key: str) -> list[VariantResult]:
        return [run for run in self.runs if run.key == key]

    def _values(self, key: str, metric: str) -> dict[int, float]:
        return {run.seed: float(run.metrics[metric]) for run in self.runs_of(key)
                if run.metrics.get(metric) is not None and not math.isnan(run.metrics[metric])}

    def summary(self, key: str, metric: str) -> Optional[Summary]:
        """Mean ± std of ``metric`` over the seeds of variant ``key`` that have a value (None: none)."""
        values = list(self._values(key, metric).values())
        return mean_std(values) if values else None

    def no_motion(self, metric: str) -> Optional[float]:
        """The no-motion baseline's value of a table column (None where it has none): the same for
        every run, since every run is evaluated on the same videos."""
        source = NO_MOTION.get(metric)
        values = [run.metrics.get(source) for run in self.runs] if source else []
        present = [float(v) for v in values if v is not None and not math.isnan(v)]
        return present[0] if present else None

    def comparisons(self) -> tuple[list[ComparisonResult], list[ComparisonResult]]:
        """The pre-registered comparisons whose variants ran (Holm-adjusted over those), and the
        exploratory ones."""
        keys = set(self.variant_keys())
        registered = [self._compare(c) for c in PREREGISTERED if c.variant in keys and c.reference in keys]
        tested = [r for r in registered if r.difference is not None and r.difference.t_p_value is not None]
        for test, attribute in (("t_p_value", "holm_t_p"), ("permutation_p_value", "holm_permutation_p")):
            adjusted = holm_adjusted([getattr(r.difference, test) for r in tested])
            for result, value in zip(tested, adjusted):
                setattr(result, attribute, value)
        exploratory = [self._compare(c) for c in exploratory_comparisons(self.variant_keys())]
        return registered, exploratory

    def _compare(self, comparison: Comparison) -> ComparisonResult:
        ours, theirs = self._values(comparison.variant, comparison.metric), self._values(comparison.reference,
                                                                                         comparison.metric)
        seeds = sorted(set(ours) & set(theirs))
        if not seeds:
            runs = self.runs_of(comparison.variant) + self.runs_of(comparison.reference)
            note = next((run.notes.get(comparison.metric) for run in runs if run.notes.get(comparison.metric)),
                        "") or "no seed has the metric for both variants"
            return ComparisonResult(comparison, [], None, note)
        difference = paired_difference([ours[s] for s in seeds], [theirs[s] for s in seeds], self.confidence)
        return ComparisonResult(comparison, seeds, difference, difference.note)

    def rows(self) -> list[list[str]]:
        """The no-motion baseline, then one row per variant: its label and ``mean ± std`` (a plain
        value for one seed) per column."""
        rows = [["no motion (source repeated)"] + [format_value(self.no_motion(metric)) for metric, _ in COLUMNS]]
        for key in self.variant_keys():
            rows.append([self.runs_of(key)[0].label] + [format_summary(self.summary(key, metric))
                                                        for metric, _ in COLUMNS])
        return rows

    def markdown(self) -> str:
        """The metrics table, the notes of n/a metrics, and the two comparison tables."""
        header = ["variant"] + [title for _, title in COLUMNS]
        lines = [f"Evaluated on the **{self.split}** split.", "",
                 "| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(COLUMNS)) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows()]
        # Each reason once, with the columns and the variants it makes n/a.
        reasons: dict[str, tuple[list[str], list[str]]] = {}
        for key in self.variant_keys():
            for metric, _ in COLUMNS:
                note = next((run.notes.get(metric) for run in self.runs_of(key) if run.notes.get(metric)), "")
                if note and self.summary(key, metric) is None:
                    titles, keys = reasons.setdefault(note, ([], []))
                    titles.append(TITLES[metric]) if TITLES[metric] not in titles else None
                    keys.append(key) if key not in keys else None
        for note, (titles, keys) in reasons.items():
            which = "" if len(keys) == len(self.variant_keys()) else " for " + ", ".join(f"({k})" for k in keys)
            lines += ["", f"{', '.join(titles)}: n/a{which} ({note})"]
        registered, exploratory = self.comparisons()
        if registered:
            lines += ["", self._comparisons_markdown(registered, True)]
        exploratory = [result for result in exploratory if result.difference is not None]
        if exploratory:
            lines += ["", self._comparisons_markdown(exploratory, False)]
        return "\n".join(lines)

    def _comparisons_markdown(self, results: list[ComparisonResult], registered: bool) -> str:
        percent = f"{self.confidence * 100:g} %"
        if registered:
            title = (f"## Pre-registered comparisons ({self.split} split; one family of {len(results)}, "
                     f"Holm–Bonferroni; verdict when both adjusted p < {ALPHA:g})")
            head = ["comparison", "metric", "difference (mean ± sd)", f"{percent} t interval", "p (t)",
                    "p (permutation)", "Holm p (t)", "Holm p (permutation)", "seeds", "verdict"]
        else:
            title = (f"## Exploratory comparisons ({self.split} split; not adjusted for multiplicity, no verdicts: "
                     "hypotheses for another experiment)")
            head = ["comparison", "metric", "difference (mean ± sd)", f"{percent} t interval", "p (t)",
                    "p (permutation)", "seeds"]
        rule = "|" + "|".join(["---", "---"] + ["---:"] * (len(head) - 2)) + "|"
        lines = [title, "", "| " + " | ".join(head) + " |", rule]
        for result in results:
            c, difference = result.comparison, result.difference
            names = f"{VARIANTS[c.variant].label} vs {VARIANTS[c.reference].label}"
            if difference is None or difference.t_p_value is None:
                cells = ["n/a"] * (6 if registered else 4) + [str(len(result.seeds))]
                if registered:
                    cells.append(f"n/a ({result.note})")
            else:
                cells = [format_summary(Summary(difference.mean, difference.std, difference.n)),
                         f"[{format_value(difference.ci_low)}, {format_value(difference.ci_high)}]",
                         format_p(difference.t_p_value), format_p(difference.permutation_p_value)]
                if registered:
                    cells += [format_p(result.holm_t_p), format_p(result.holm_permutation_p)]
                cells.append(str(difference.n))
                if registered:
                    cells.append(result.verdict)
            lines.append("| " + " | ".join([names, TITLES.get(c.metric, c.metric)] + cells) + " |")
        return "\n".join(lines)

    def csv(self) -> str:
        """One row per variant: ``key, variant, steps, seeds``, then each metric's mean and
        ``<metric>_std`` (empty when n/a or for one seed); first the no-motion baseline (key 0)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["key", "variant", "steps", "seeds"]
                        + [name for key, _ in COLUMNS for name in (key, f"{key}_std")])
        baseline = [self.no_motion(metric) for metric, _ in COLUMNS]
        writer.writerow(["0", "no motion", 0, ""] + [cell for value in baseline for cell in
                                                      ("" if value is None else repr(value), "")])
        for key in self.variant_keys():
            runs = self.runs_of(key)
            cells = []
            for metric, _ in COLUMNS:
                summary = self.summary(key, metric)
                cells += ["" if summary is None else repr(summary.mean),
                          "" if summary is None or summary.std is None else repr(summary.std)]
            writer.writerow([key, runs[0].name, runs[0].steps, " ".join(str(run.seed) for run in runs)] + cells)
        return buffer.getvalue()

    def runs_csv(self) -> str:
        """One row per run: ``key, variant, seed, steps``, then each metric (empty when n/a)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["key", "variant", "seed", "steps"] + [key for key, _ in COLUMNS])
        for run in self.runs:
            writer.writerow([run.key, run.name, run.seed, run.steps]
                            + ["" if run.metrics.get(key) is None else repr(float(run.metrics[key]))
                               for key, _ in COLUMNS])
        return buffer.getvalue()

    def to_dict(self) -> dict:
        summary = {key: {metric: None if (s := self.summary(key, metric)) is None else s.to_dict()
                         for metric, _ in COLUMNS} for key in self.variant_keys()}
        registered, exploratory = self.comparisons()
        return {"dataset": self.dataset, "kind": self.kind, "split": self.split, "budget": self.budget,
                "seed": self.seed, "data_seed": self.data_seed, "seeds": self.seeds, "confidence": self.confidence,
                "alpha": ALPHA,
                "settings": self.settings, "no_motion": {metric: self.no_motion(metric) for metric, _ in COLUMNS},
                "summary": summary, "preregistered": [r.to_dict() for r in registered],
                "exploratory": [r.to_dict() for r in exploratory], "runs": [run.to_dict() for run in self.runs]}


def format_value(value: Optional[float]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.3f}"
    return f"{value:.4f}"


def format_p(value: Optional[float]) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def format_summary(summary: Optional[Summary]) -> str:
    if summary is None:
        return "n/a"
    if summary.std is None:
        return format_value(summary.mean)
    return f"{format_value(summary.mean)} ± {format_value(summary.std)}"
