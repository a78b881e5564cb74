"""An experiment, not library core: the quality benchmark of the model variants
(``fomm benchmark quality --dataset sprites --budget ITERS --seeds N``).

Every variant is trained with the same training seeds, on the same data, for exactly the same
number of iterations, then evaluated on the test split with :func:`fomm.evaluation.evaluate_dataset`:

===  ====================  ==================================================================
key  name                  change to the dataset's base config (``configs/<kind>-64.yaml``)
===  ====================  ==================================================================
a    zeroth-order          ``estimate_jacobian: False`` and ``equivariance_jacobian: 0``: keypoint
                           displacements only, as in Monkey-Net
b    no-occlusion          ``estimate_occlusion_map: False``
c    fomm                  the base config unchanged (full FOMM)
d    fomm+graph            ``graph_params`` with its defaults (:class:`~fomm.config.GraphParams`,
                           ``style: improved``)
e    fomm+flow             ``flow_consistency: 10`` (the equivariance weight) and
                           ``nearby_pair_ratio: 0.5`` (half of the pairs within 2 frames)
f    fomm+graph+flow       (d) and (e)
g    fomm+graph(seed)      ``graph_params: {style: seed}``: the seed proposal's graph (one head on
                           the raw coordinates, sigmoid adjacency as a soft mask, values only,
                           mix 0.3; :class:`~fomm.models.fomm.graph.SeedKeypointGraph`)
===  ====================  ==================================================================

Seeds: ``seeds = seed, seed + 1, ..., seed + N - 1``. Only the training seed
(``train_params.seed``: initial weights, data order, augmentation and equivariance draws) changes
from one to the next; the generated dataset and the landmark detector come from ``seed`` alone, so
every run is evaluated on the same videos by the same detector. Common to every run, so that a
fixed budget means the same thing for all: a constant learning rate (no ``epoch_milestones``: the
base schedule is stated in epochs of a full run, not of a budget), no intermediate checkpoints,
decoded frames cached in memory.

Metrics (units of :mod:`fomm.evaluation.metrics`): reconstruction L1, AKD and MKR with a landmark
detector trained on the ground truth (:func:`fomm.evaluation.train_landmark_detector`, once per
dataset; n/a on warped photos, whose ground-truth points are a jittered grid of frame 0 that no
detector can find from one frame), keypoint regression error, temporal jitter and keypoint
acceleration against ground truth, dense flow end-point error where the dataset has ground-truth
flow (warped photos), and seconds per training iteration (wall clock of :meth:`Trainer.train` /
steps, including the final checkpoint write; on a shared machine this is noisy). A metric that
this version of :func:`evaluate_dataset` does not compute is n/a.

Claims (:data:`CLAIMS`): the comparisons the variants exist for, each paired over seeds with a
Student t interval (:func:`fomm.evaluation.statistics.paired_difference`): the graphs (d, g)
against FOMM (c) and against each other on temporal stability (jitter, keypoint acceleration) and
keypoint error; flow consistency (e) against FOMM (c) on temporal stability; zeroth-order (a),
no-occlusion (b) and full FOMM (c) against each other on L1 and keypoint error. A claim is listed
when both of its variants ran; its verdict is about the first variant minus the second.

Outputs in ``out``: ``table.md`` (mean ± std over seeds, then the claims), ``table.csv`` (one row
per variant: the mean and ``<metric>_std``), ``runs.csv`` (one row per variant and seed),
``results.json`` (summary, claims, every run with every step's losses), ``loss_curves.png``,
``metrics.png``, the generated dataset (``dataset/``), the landmark detector (``landmarks.pt``)
and one folder per run (``runs/<key>-<name>/seed-<s>/``: checkpoint, logs, ``result.json``). A run
whose ``result.json`` matches its settings (config with the seed, budget, evaluation) is not
trained again, so an interrupted benchmark continues where it stopped and more seeds can be added
later. Progress goes to :mod:`logging` or to the ``log`` callback of :func:`run_quality_benchmark`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Optional, Sequence

import torch

from ..config import FommConfig, GraphParams
from ..models.registry import load_config
from ..data.synthetic.writer import make_dataset, read_meta
from ..device import set_threads
from ..errors import ConfigError, DataError, UserError
from ..files import write_text_atomic
from ..models import FommModel
from ..training import Trainer
from ..visualize import save_figure
from .landmarks import TrainedLandmarkDetector, load_landmark_detector, save_landmark_detector, train_landmark_detector
from .protocol import evaluate_dataset
from .statistics import PairedDifference, Summary, mean_std, paired_difference

logger = logging.getLogger(__name__)

__all__ = [
    "CLAIMS",
    "COLUMNS",
    "KINDS",
    "VARIANTS",
    "BenchmarkResult",
    "BenchmarkSetup",
    "Claim",
    "ClaimResult",
    "Variant",
    "VariantResult",
    "check_variants",
    "evaluate_variant",
    "format_summary",
    "format_value",
    "plot_loss_curves",
    "plot_metrics",
    "prepare_benchmark",
    "run_quality_benchmark",
    "run_settings_key",
    "variant_config",
]

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
KINDS = ("sprites", "warped-photos")
#: Settings of the flow-consistency variants (e, f).
FLOW_CONSISTENCY_WEIGHT = 10.0
NEARBY_PAIR_RATIO = 0.5
#: Confidence of the claims' intervals.
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Variant:
    key: str
    name: str
    description: str
    jacobian: bool = True
    occlusion: bool = True
    graph: bool = False
    flow: bool = False
    graph_style: Literal["improved", "seed"] = "improved"

    @property
    def label(self) -> str:
        return f"({self.key}) {self.name}"

    @property
    def folder(self) -> str:
        """The run folder's name: key and name, anything but letters and digits as ``-``."""
        return re.sub(r"[^A-Za-z0-9]+", "-", f"{self.key}-{self.name}").strip("-")


VARIANTS: dict[str, Variant] = {v.key: v for v in (
    Variant("a", "zeroth-order", "no jacobians: keypoint displacements only (Monkey-Net)", jacobian=False),
    Variant("b", "no-occlusion", "no occlusion map", occlusion=False),
    Variant("c", "fomm", "full FOMM (base config)"),
    Variant("d", "fomm+graph", "FOMM + keypoint graph refiner", graph=True),
    Variant("e", "fomm+flow", f"FOMM + flow consistency (weight {FLOW_CONSISTENCY_WEIGHT:g}, "
            f"nearby pairs {NEARBY_PAIR_RATIO:g})", flow=True),
    Variant("f", "fomm+graph+flow", "FOMM + graph + flow consistency", graph=True, flow=True),
    Variant("g", "fomm+graph(seed)", "FOMM + the seed proposal's keypoint graph (one head on coordinates, "
            "sigmoid soft-mask adjacency, values only, mix 0.3)", graph=True, graph_style="seed"),
)}

#: Table columns: (key in VariantResult.metrics, header). All are lower-is-better.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("L1", "L1"),
    ("AKD", "AKD (px)"),
    ("MKR", "MKR"),
    ("keypoint_error", "kp error (% w)"),
    ("jitter", "jitter (% w)"),
    ("kp_acceleration", "kp accel (% w)"),
    ("flow_epe", "flow EPE (px)"),
    ("seconds_per_iter", "s / iter"),
)
TITLES = dict(COLUMNS)


@dataclass(frozen=True)
class Claim:
    """A comparison of ``variant`` against ``reference`` on ``metrics``, paired over seeds."""

    title: str
    variant: str
    reference: str
    metrics: tuple[str, ...]


TEMPORAL = ("jitter", "kp_acceleration")
CLAIMS: tuple[Claim, ...] = (
    Claim("keypoint graph vs FOMM", "d", "c", TEMPORAL + ("keypoint_error",)),
    Claim("seed graph vs FOMM", "g", "c", TEMPORAL + ("keypoint_error",)),
    Claim("keypoint graph vs seed graph", "d", "g", TEMPORAL + ("keypoint_error",)),
    Claim("flow consistency vs FOMM", "e", "c", TEMPORAL),
    Claim("zeroth-order vs first-order", "a", "c", ("L1", "keypoint_error")),
    Claim("no occlusion vs occlusion", "b", "c", ("L1", "keypoint_error")),
    Claim("zeroth-order vs no occlusion", "a", "b", ("L1", "keypoint_error")),
)


def variant_config(base: FommConfig, variant: Variant, *, budget: int, seed: int) -> FommConfig:
    """``base`` edited for ``variant`` and for a fixed-budget run with training seed ``seed``
    (see the module docstring)."""
    config = base.model_copy(deep=True)
    model, train = config.model_params, config.train_params
    if train is None or config.dataset_params is None:
        raise ConfigError("the base config needs dataset_params and train_params")
    if not variant.jacobian:
        model.common_params.estimate_jacobian = False
        train.loss_weights.equivariance_jacobian = 0.0
    if not variant.occlusion:
        model.generator_params.estimate_occlusion_map = False
    if variant.graph:
        # GraphParams() for the default style keeps the improved variants' configs as before.
        improved = variant.graph_style == "improved"
        model.graph_params = GraphParams() if improved else GraphParams(style=variant.graph_style)
    else:
        model.graph_params = None
    if variant.flow:
        train.loss_weights.flow_consistency = FLOW_CONSISTENCY_WEIGHT
        config.dataset_params.nearby_pair_ratio = NEARBY_PAIR_RATIO
    else:
        train.loss_weights.flow_consistency = 0.0
        config.dataset_params.nearby_pair_ratio = 0.0
    train.seed = seed
    train.epoch_milestones = []
    # The budget, not the epoch count, ends training: enough epochs for it, and checkpoints only
    # at the end (max_steps writes one).
    train.num_epochs = max(1, budget) + 1
    train.checkpoint_freq = train.num_epochs + 1
    config.dataset_params.cache_frames = True
    return config


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
class BenchmarkResult:
    """Every run of a benchmark (``runs``: each variant with each of ``seeds``) and what follows
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


# --------------------------------------------------------------------------------------------
# the run


def _make_dataset(kind: str, out: Path, videos: int, frames: int, size: int, seed: int) -> Path:
    """Generate (or reuse, when its meta.json matches) the synthetic dataset in ``out``."""
    meta = read_meta(out)
    wanted = {"kind": kind, "videos": videos, "frames": frames, "seed": seed}
    if meta and all(meta.get(k) == v for k, v in wanted.items()) and list(meta.get("frame_shape", []))[:1] == [size]:
        logger.info("reusing the %s dataset in %s", kind, out)
        return out
    logger.info("generating the %s dataset (%d videos x %d frames at %d px, seed %d) in %s",
                kind, videos, frames, size, seed, out)
    make_dataset(kind, out, videos=videos, frames=frames, size=size, seed=seed, overwrite=bool(meta) or
                 (out / "train").exists(), workers=1)
    return out


def _base_config(kind: Optional[str], root: Path, size: int) -> FommConfig:
    name = kind if kind in KINDS else "sprites"
    config = load_config(CONFIGS / f"{name}-64.yaml")
    assert config.dataset_params is not None
    config.dataset_params.root_dir = str(root)
    config.dataset_params.frame_shape = (size, size, 3)
    return config


def run_settings_key(config: FommConfig, budget: int, eval_settings: dict) -> dict:
    return {"config": config.to_dict(), "budget": budget, "evaluation": eval_settings}


@dataclass
class BenchmarkSetup:
    """What every run of a benchmark shares: the dataset, its base config, the landmark detector
    (or the reason there is none) and the evaluation settings."""

    root: Path
    kind: Optional[str]
    size: int
    base: FommConfig
    detector: Optional[TrainedLandmarkDetector]
    landmark_note: str
    landmark_info: dict
    eval_videos: Optional[int]
    max_train_videos: int

    @property
    def eval_settings(self) -> dict:
        return {"eval_videos": self.eval_videos, "max_train_videos": self.max_train_videos,
                "landmarks": self.landmark_info.get("path")}


def prepare_benchmark(dataset: str, out: Path, *, videos: int, frames: int, size: int, seed: int,
                      landmarks: Optional[str | Path], landmark_epochs: int, eval_videos: Optional[int],
                      max_train_videos: int, batch_size: Optional[int],
                      mixed_precision: Optional[str] = None,
                      log: Callable[[str], object] = logger.info) -> BenchmarkSetup:
    """The dataset (generated into ``out/dataset`` from ``seed`` or a folder), its base config and
    the landmark detector (``landmarks``, or one trained from ``seed`` into ``out/landmarks.pt``
    and reused from there); see :func:`run_quality_benchmark` for the arguments."""
    if eval_videos is not None and eval_videos < 1:
        raise DataError(f"the number of evaluation videos must be at least 1, got {eval_videos}")
    if dataset in KINDS:
        kind: Optional[str] = dataset
        root = _make_dataset(dataset, out / "dataset", videos, frames, size, seed)
    else:
        root = Path(dataset)
        if not root.is_dir():
            raise DataError(f"dataset must be one of {', '.join(KINDS)} or a dataset folder; {root} is neither")
        meta = read_meta(root)
        kind = meta.get("kind")
        if meta.get("frame_shape"):
            size = int(meta["frame_shape"][0])
    base = _base_config(kind, root, size)
    assert base.train_params is not None
    if batch_size is not None:
        base.train_params.batch_size = batch_size
    if mixed_precision is not None:
        # Every variant trains in the same arithmetic, so the comparison stays on equal terms.
        base.train_params.mixed_precision = mixed_precision

    detector, landmark_note, landmark_info = None, "", {}
    if landmarks is not None:
        detector = load_landmark_detector(landmarks)
        landmark_info = {"path": str(landmarks), **detector.metrics}
    elif kind == "sprites":
        path = out / "landmarks.pt"
        if path.is_file():
            log(f"reusing the landmark detector {path}")
            detector = load_landmark_detector(path)
        else:
            log(f"training the ground-truth landmark detector ({landmark_epochs} epochs) ...")
            trained = train_landmark_detector(root, epochs=landmark_epochs, seed=seed)
            detector = trained.detector
            save_landmark_detector(path, detector)
            log(f"landmark detector: test error {trained.test_error:.2f}% of width, visibility accuracy "
                f"{trained.visibility_accuracy:.3f}, {trained.seconds:.0f} s")
        landmark_info = {"path": str(path), **detector.metrics}
    elif kind == "warped-photos":
        landmark_note = ("warped photos: the ground-truth points are a random jittered grid of frame 0 that "
                         "no detector can find from one frame")
    else:
        landmark_note = "no landmark detector given, and none can be trained for a dataset of unknown kind"
    return BenchmarkSetup(root, kind, size, base, detector, landmark_note, landmark_info, eval_videos,
                          max_train_videos)


def evaluate_variant(model: FommModel, setup: BenchmarkSetup,
                     metrics_wanted: Sequence[str]) -> tuple[dict[str, Optional[float]], dict[str, str], dict]:
    """Evaluate ``model`` on the test split of ``setup``'s dataset: the values (None: n/a) and
    notes of ``metrics_wanted``, and the evaluation's settings (with ``eval_seconds``). A metric
    that :func:`evaluate_dataset` does not compute is n/a with a note saying so."""
    model.eval()
    started = time.perf_counter()
    evaluation = evaluate_dataset(model, setup.root, landmark_detector=setup.detector,
                                  num_videos=setup.eval_videos, max_train_videos=setup.max_train_videos)
    eval_seconds = time.perf_counter() - started
    metrics: dict[str, Optional[float]] = {}
    notes: dict[str, str] = {}
    for key in metrics_wanted:
        try:
            metric = evaluation.metric(key)
        except KeyError:
            metrics[key], notes[key] = None, "not computed by this version of evaluate_dataset"
            continue
        value = metric.value
        metrics[key] = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
        notes[key] = metric.note
    if setup.detector is None and setup.landmark_note:
        for key in ("AKD", "MKR"):
            if key in notes:
                notes[key] = setup.landmark_note
    settings = dict(evaluation.settings)
    settings["eval_seconds"] = eval_seconds
    return metrics, notes, settings


def _train_and_evaluate(variant: Variant, config: FommConfig, run_dir: Path, budget: int, seed: int,
                        setup: BenchmarkSetup, progress: bool) -> VariantResult:
    """Train one variant for exactly ``budget`` steps with training seed ``seed`` in ``run_dir``
    and evaluate it."""
    trainer = Trainer(config, run_dir, device="cpu", seed=seed, max_steps=budget, progress=progress)
    trained = trainer.train()
    if trained.interrupted:
        raise KeyboardInterrupt
    if trained.steps_this_run != budget:
        raise RuntimeError(f"variant ({variant.key}) trained {trained.steps_this_run} steps instead of {budget}")
    metrics, notes, settings = evaluate_variant(trainer.model, setup,
                                                [key for key, _ in COLUMNS if key != "seconds_per_iter"])
    metrics["seconds_per_iter"] = trained.seconds_per_step
    return VariantResult(variant.key, variant.name, variant.description, trained.steps_this_run, trained.seconds,
                         metrics, notes, trained.history, settings, seed)


def check_variants(variants: Sequence[str]) -> None:
    """Raise UserError unless ``variants`` is a non-empty list of keys of :data:`VARIANTS`."""
    unknown = [key for key in variants if key not in VARIANTS]
    if unknown or not variants:
        raise UserError(f"unknown variant(s) {', '.join(unknown) or '(none given)'}; choose from "
                        + ", ".join(f"{v.key} ({v.name})" for v in VARIANTS.values()))


def run_quality_benchmark(
    dataset: str,
    budget: int,
    out: str | Path,
    *,
    videos: int = 40,
    frames: int = 32,
    size: int = 64,
    seed: int = 0,
    seeds: int = 1,
    variants: Sequence[str] = tuple(VARIANTS),
    landmarks: Optional[str | Path] = None,
    landmark_epochs: int = 10,
    eval_videos: Optional[int] = None,
    max_train_videos: int = 16,
    batch_size: Optional[int] = None,
    mixed_precision: Optional[str] = None,
    threads: Optional[int] = 1,
    progress: bool = False,
    log: Callable[[str], object] = logger.info,
) -> BenchmarkResult:
    """Train and evaluate ``variants`` (keys of :data:`VARIANTS`) for ``budget`` iterations each,
    once per training seed ``seed, seed + 1, ..., seed + seeds - 1``.

    ``dataset``: a kind of :mod:`fomm.data.synthetic` (generated into ``out/dataset`` from
    ``videos``, ``frames``, ``size`` and ``seed``, or reused when it matches) or a dataset folder.
    ``landmarks``: a detector from ``fomm train-landmarks``; by default one is trained for
    ``landmark_epochs`` on a sprites dataset (``out/landmarks.pt``, reused when present).
    ``eval_videos`` limits the test videos, ``max_train_videos`` the train videos of the keypoint
    regression. ``batch_size`` and ``mixed_precision`` (``train_params.mixed_precision``: no, auto,
    bf16, fp16) override the config's, for every variant alike. Runs go seed by seed (every variant with the
    first seed, then with the second, ...), so an interrupted benchmark has comparable runs. Writes
    the outputs listed in the module docstring and returns the results.
    """
    if budget < 1:
        raise UserError(f"budget must be at least 1 iteration, got {budget}")
    if seeds < 1:
        raise UserError(f"the number of seeds must be at least 1, got {seeds}")
    check_variants(variants)
    variants = list(dict.fromkeys(variants))  # each variant once, in the order given
    if threads:
        set_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    setup = prepare_benchmark(dataset, out, videos=videos, frames=frames, size=size, seed=seed,
                              landmarks=landmarks, landmark_epochs=landmark_epochs, eval_videos=eval_videos,
                              max_train_videos=max_train_videos, batch_size=batch_size,
                              mixed_precision=mixed_precision, log=log)

    training_seeds = [seed + i for i in range(seeds)]
    results: dict[tuple[str, int], VariantResult] = {}
    for run_seed in training_seeds:
        for key in variants:
            variant = VARIANTS[key]
            results[key, run_seed] = _run_once(variant, setup, out, budget, run_seed, progress, log)

    assert setup.base.train_params is not None
    settings = {"videos": videos if setup.kind in KINDS and dataset in KINDS else None, "frames": frames,
                "size": setup.size, "batch_size": setup.base.train_params.batch_size,
                "mixed_precision": setup.base.train_params.mixed_precision,
                "threads": torch.get_num_threads(), "torch": torch.__version__,
                "flow_consistency_weight": FLOW_CONSISTENCY_WEIGHT, "nearby_pair_ratio": NEARBY_PAIR_RATIO,
                "data_seed": seed, "landmarks": setup.landmark_info, **setup.eval_settings,
                "total_seconds": time.perf_counter() - started}
    ordered = [results[key, s] for key in variants for s in training_seeds]
    benchmark = BenchmarkResult(str(setup.root), setup.kind, budget, training_seeds, ordered, settings)
    _write_outputs(benchmark, out)
    return benchmark


def _run_once(variant: Variant, setup: BenchmarkSetup, out: Path, budget: int, seed: int, progress: bool,
              log: Callable[[str], object]) -> VariantResult:
    """One run in ``out/runs/<variant>/seed-<seed>``, or its saved result when the settings match."""
    config = variant_config(setup.base, variant, budget=budget, seed=seed)
    run_dir = out / "runs" / variant.folder / f"seed-{seed}"
    saved = run_dir / "result.json"
    wanted = json.loads(json.dumps(run_settings_key(config, budget, setup.eval_settings)))
    if saved.is_file():
        data = json.loads(saved.read_text())
        if data.get("run_settings") == wanted:
            log(f"{variant.label}, seed {seed}: reusing {saved}")
            return VariantResult.from_dict(data)
    log(f"{variant.label}, seed {seed}: training {budget} iterations ...")
    result = _train_and_evaluate(variant, config, run_dir, budget, seed, setup, progress)
    data = result.to_dict()
    data["run_settings"] = wanted
    write_text_atomic(saved, json.dumps(data) + "\n")
    log(f"{variant.label}, seed {seed}: {result.seconds_per_iter:.3f} s/iter, L1 {format_value(result.metrics['L1'])}, "
        f"keypoint error {format_value(result.metrics.get('keypoint_error'))}")
    return result


# --------------------------------------------------------------------------------------------
# outputs


def _write_outputs(benchmark: BenchmarkResult, out: Path) -> None:
    seeds = ", ".join(str(s) for s in benchmark.seeds)
    spread = "mean ± std over seeds" if len(benchmark.seeds) > 1 else "one seed"
    title = (f"Quality benchmark: {benchmark.kind or benchmark.dataset}, {benchmark.budget} iterations per "
             f"variant, training seeds {seeds} ({spread}; data seed {benchmark.seed})\n\n")
    write_text_atomic(out / "table.md", title + benchmark.markdown() + "\n")
    write_text_atomic(out / "table.csv", benchmark.csv())
    write_text_atomic(out / "runs.csv", benchmark.runs_csv())
    write_text_atomic(out / "results.json", json.dumps(benchmark.to_dict(), indent=1) + "\n")
    plot_loss_curves(benchmark, out / "loss_curves.png")
    plot_metrics(benchmark, out / "metrics.png")


def _smooth(values: list[float], window: int) -> list[float]:
    smoothed, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        smoothed.append(total / min(i + 1, window))
    return smoothed


def _mean_over_runs(curves: list[list[float]]) -> list[float]:
    """Step-wise mean of the runs' curves, over the steps every run has."""
    length = min(len(curve) for curve in curves)
    return [sum(curve[i] for curve in curves) / len(curves) for i in range(length)]


def plot_loss_curves(benchmark: BenchmarkResult, path: Path) -> None:
    """Two panels: the perceptual (reconstruction) loss, the one term every variant shares, and the
    total generator loss (which adds each variant's own terms), both as running means of the mean
    over seeds."""
    from matplotlib.figure import Figure  # heavy and only needed here

    figure = Figure(figsize=(11, 4), dpi=80, layout="tight")
    axes = figure.subplots(1, 2)
    window = max(1, benchmark.budget // 20)
    for key in benchmark.variant_keys():
        runs = benchmark.runs_of(key)
        perceptual = _mean_over_runs([[step.get("perceptual", float("nan")) for step in run.losses] for run in runs])
        total = _mean_over_runs([[sum(v for k, v in step.items() if k != "disc_gan") for step in run.losses]
                                 for run in runs])
        steps = range(1, len(perceptual) + 1)
        label = runs[0].label
        axes[0].plot(steps, _smooth(perceptual, window), label=label, linewidth=1.2)
        axes[1].plot(steps, _smooth(total, window), label=label, linewidth=1.2)
    axes[0].set_title("perceptual (pixel pyramid) loss")
    axes[1].set_title("total generator loss (variant's own terms)")
    for axis in axes:
        axis.set_xlabel("iteration")
        axis.set_yscale("log")
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    seeds = f", mean of {len(benchmark.seeds)} seeds" if len(benchmark.seeds) > 1 else ""
    figure.suptitle(f"{benchmark.kind or Path(benchmark.dataset).name}: running mean over {window} iterations"
                    f"{seeds}")
    save_figure(figure, path)


def plot_metrics(benchmark: BenchmarkResult, path: Path) -> None:
    """One bar chart per metric (lower is better for all), variants side by side, the bar at the
    mean over seeds with the std as an error bar and each seed's value as a dot; n/a metrics omitted."""
    from matplotlib.figure import Figure  # heavy and only needed here

    keys = benchmark.variant_keys()
    columns = [(metric, title) for metric, title in COLUMNS
               if any(benchmark.summary(key, metric) is not None for key in keys)]
    cols = min(4, max(1, len(columns)))
    rows = max(1, math.ceil(len(columns) / cols))
    figure = Figure(figsize=(3.2 * cols, 2.9 * rows), dpi=80, layout="tight")
    axes = figure.subplots(rows, cols, squeeze=False)
    colours = [f"C{i}" for i in range(len(keys))]
    for index, (metric, title) in enumerate(columns):
        axis = axes[index // cols][index % cols]
        summaries = [benchmark.summary(key, metric) for key in keys]
        axis.bar(keys, [s.mean if s is not None else 0 for s in summaries], color=colours,
                 yerr=[s.std if s is not None and s.std is not None else 0 for s in summaries], capsize=3)
        if len(benchmark.seeds) > 1:
            for position, key in enumerate(keys):
                values = [run.metrics[metric] for run in benchmark.runs_of(key) if run.metrics.get(metric) is not None]
                axis.scatter([position] * len(values), values, color="black", s=6, zorder=3)
        axis.set_title(title + " (lower is better)", fontsize=9)
        axis.tick_params(labelsize=8)
        axis.grid(axis="y", alpha=0.3)
    for index in range(len(columns), rows * cols):
        axes[index // cols][index % cols].axis("off")
    legend = ", ".join(f"{key}: {benchmark.runs_of(key)[0].name}" for key in keys)
    figure.suptitle(f"{benchmark.kind or Path(benchmark.dataset).name}, {benchmark.budget} iterations, "
                    f"{len(benchmark.seeds)} seed(s): {legend}", fontsize=9)
    save_figure(figure, path)
