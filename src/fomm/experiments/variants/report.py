"""The variants experiment's results: one run (:class:`VariantResult`), the comparisons on one
metric (:class:`ClaimResult`), and all runs together with their tables (:class:`VariantsResult`:
markdown, CSV, JSON)."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Optional

from ...evaluation.statistics import PairedDifference, Summary, mean_std, paired_difference
from .definitions import CLAIMS, COLUMNS, TITLES, VARIANTS, Claim

__all__ = ["CONFIDENCE", "ClaimResult", "VariantResult", "VariantsResult", "format_summary", "format_value"]

#: Confidence of the claims' intervals.
CONFIDENCE = 0.95


@dataclass
class VariantResult:
    """One run: a variant trained with one seed and evaluated."""

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
class ClaimResult:
    """A :class:`Claim` on one metric: ``difference`` is of ``variant - reference`` over the
    ``seeds`` where both have a value (None when there is none; ``note`` says why)."""

    claim: Claim
    metric: str
    seeds: list[int]
    difference: Optional[PairedDifference]
    note: str = ""

    @property
    def verdict(self) -> str:
        return self.difference.verdict if self.difference is not None else "n/a"

    def to_dict(self) -> dict:
        return {"claim": self.claim.title, "variant": self.claim.variant, "reference": self.claim.reference,
                "metric": self.metric, "seeds": self.seeds, "verdict": self.verdict,
                "difference": None if self.difference is None else self.difference.to_dict(), "note": self.note}


@dataclass
class VariantsResult:
    """Every run of the experiment (``runs``: each variant with each of ``seeds``) and what follows
    from them: per-variant summaries over seeds and the paired claims."""

    dataset: str
    kind: Optional[str]
    budget: int
    seeds: list[int]
    runs: list[VariantResult]
    settings: dict = field(default_factory=dict)
    confidence: float = CONFIDENCE

    @property
    def seed(self) -> int:
        """The first seed (``--seed``), which also made the dataset and the landmark detector."""
        return self.seeds[0]

    def variant_keys(self) -> list[str]:
        """The variants that ran, in the order of their first run."""
        return list(dict.fromkeys(run.key for run in self.runs))

    def runs_of(self, key: str) -> list[VariantResult]:
        return [run for run in self.runs if run.key == key]

    def summary(self, key: str, metric: str) -> Optional[Summary]:
        """Mean ± std of ``metric`` over the seeds of variant ``key`` that have a value (None: none)."""
        values = [run.metrics.get(metric) for run in self.runs_of(key)]
        present = [float(v) for v in values if v is not None and not math.isnan(v)]
        return mean_std(present) if present else None

    def claims(self) -> list[ClaimResult]:
        """:data:`CLAIMS` whose two variants both ran, one result per metric."""
        keys = set(self.variant_keys())
        results = []
        for claim in CLAIMS:
            if claim.variant not in keys or claim.reference not in keys:
                continue
            for metric in claim.metrics:
                results.append(self._claim_on(claim, metric))
        return results

    def _claim_on(self, claim: Claim, metric: str) -> ClaimResult:
        def by_seed(key: str) -> dict[int, float]:
            return {run.seed: float(run.metrics[metric]) for run in self.runs_of(key)
                    if run.metrics.get(metric) is not None and not math.isnan(run.metrics[metric])}

        ours, theirs = by_seed(claim.variant), by_seed(claim.reference)
        seeds = sorted(set(ours) & set(theirs))
        if not seeds:
            note = next((run.notes.get(metric) for run in self.runs_of(claim.variant) + self.runs_of(claim.reference)
                         if run.notes.get(metric)), "") or "no seed has the metric for both variants"
            return ClaimResult(claim, metric, [], None, note)
        difference = paired_difference([ours[s] for s in seeds], [theirs[s] for s in seeds], self.confidence)
        return ClaimResult(claim, metric, seeds, difference, difference.note)

    def rows(self) -> list[list[str]]:
        """One row per variant: its label, then ``mean ± std`` (a plain value for one seed) per column."""
        rows = []
        for key in self.variant_keys():
            row = [self.runs_of(key)[0].label]
            for metric, _ in COLUMNS:
                row.append(format_summary(self.summary(key, metric)))
            rows.append(row)
        return rows

    def markdown(self) -> str:
        """The metrics table, the notes of n/a metrics, and the claims table."""
        header = ["variant"] + [title for _, title in COLUMNS]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(COLUMNS)) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows()]
        notes: dict[str, str] = {}
        for key in self.variant_keys():
            for run in self.runs_of(key):
                for metric, note in run.notes.items():
                    if note and self.summary(key, metric) is None:
                        notes.setdefault(metric, note)
        grouped: dict[str, list[str]] = {}
        for metric, note in notes.items():
            grouped.setdefault(note, []).append(TITLES.get(metric, metric))
        for note, titles in grouped.items():
            lines.append("")
            lines.append(f"{', '.join(titles)}: n/a ({note})")
        claims = self.claims()
        if claims:
            lines += ["", self.claims_markdown(claims)]
        return "\n".join(lines)

    def claims_markdown(self, claims: Optional[list[ClaimResult]] = None) -> str:
        """The claims table: for each claim and metric, the mean paired difference (first variant
        minus second) ± its std over seeds, the t interval, the number of seeds and the verdict."""
        claims = self.claims() if claims is None else claims
        percent = f"{self.confidence * 100:g} %"
        lines = [f"## Claims (paired over seeds: first variant minus second; {percent} t interval; "
                 "every metric is lower-is-better, so `lower` favours the first variant)", "",
                 f"| comparison | metric | difference | {percent} interval | seeds | verdict |",
                 "|---|---|---:|---:|---:|---|"]
        for result in claims:
            claim, difference = result.claim, result.difference
            comparison = f"{VARIANTS[claim.variant].label} vs {VARIANTS[claim.reference].label}"
            if difference is None:
                cells = ["n/a", "n/a", "0", f"n/a ({result.note})"]
            else:
                interval = ("n/a" if difference.ci_low is None
                            else f"[{format_value(difference.ci_low)}, {format_value(difference.ci_high)}]")
                verdict = difference.verdict + (f" ({difference.note})" if difference.note else "")
                cells = [format_summary(Summary(difference.mean, difference.std, difference.n)), interval,
                         str(difference.n), verdict]
            lines.append("| " + " | ".join([comparison, TITLES.get(result.metric, result.metric)] + cells) + " |")
        return "\n".join(lines)

    def csv(self) -> str:
        """One row per variant: ``key, variant, steps, seeds``, then each metric's mean and
        ``<metric>_std`` (empty when n/a or for one seed)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["key", "variant", "steps", "seeds"]
                        + [name for key, _ in COLUMNS for name in (key, f"{key}_std")])
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
        return {"dataset": self.dataset, "kind": self.kind, "budget": self.budget, "seed": self.seed,
                "seeds": self.seeds, "confidence": self.confidence, "settings": self.settings,
                "summary": summary, "claims": [claim.to_dict() for claim in self.claims()],
                "runs": [run.to_dict() for run in self.runs]}


def format_value(value: Optional[float]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.3f}"
    return f"{value:.4f}"


def format_summary(summary: Optional[Summary]) -> str:
    if summary is None:
        return "n/a"
    if summary.std is None:
        return format_value(summary.mean)
    return f"{format_value(summary.mean)} ± {format_value(summary.std)}"

