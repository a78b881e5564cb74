"""An experiment, not library core: the quality benchmark of the model variants
(``fomm benchmark quality --dataset sprites --budget ITERS``).

Six variants are trained from the same seed, on the same data, for exactly the same number of
iterations, then evaluated on the test split with :func:`fomm.evaluation.evaluate_dataset`:

===  ====================  ==================================================================
key  name                  change to the dataset's base config (``configs/<kind>-64.yaml``)
===  ====================  ==================================================================
a    zeroth-order          ``estimate_jacobian: False`` and ``equivariance_jacobian: 0``: keypoint
                           displacements only, as in Monkey-Net
b    no-occlusion          ``estimate_occlusion_map: False``
c    fomm                  the base config unchanged (full FOMM)
d    fomm+graph            ``graph_params`` with its defaults (:class:`~fomm.config.GraphParams`)
e    fomm+flow             ``flow_consistency: 10`` (the equivariance weight) and
                           ``nearby_pair_ratio: 0.5`` (half of the pairs within 2 frames)
f    fomm+graph+flow       (d) and (e)
===  ====================  ==================================================================

Common to every variant, so that a fixed budget means the same thing for all: a constant learning
rate (no ``epoch_milestones``: the base schedule is stated in epochs of a full run, not of a budget),
no intermediate checkpoints, decoded frames cached in memory, ``train_params.seed`` = ``--seed``.

Metrics (units of :mod:`fomm.evaluation.metrics`): reconstruction L1, AKD and MKR with a landmark
detector trained on the ground truth (:func:`fomm.evaluation.train_landmark_detector`, once per
dataset; n/a on warped photos, whose ground-truth points are a jittered grid of frame 0 that no
detector can find from one frame), keypoint regression error and temporal jitter against ground
truth, dense flow end-point error where the dataset has ground-truth flow (warped photos), and
seconds per training iteration (wall clock of :meth:`Trainer.train` / steps, including the final
checkpoint write; on a shared machine this is noisy).

Outputs in ``out``: ``table.md``, ``table.csv``, ``results.json``, ``loss_curves.png``,
``metrics.png``, the generated dataset (``dataset/``), the landmark detector (``landmarks.pt``) and
one folder per variant (``runs/<key>-<name>/``: checkpoint, logs, ``result.json``). A variant whose
``result.json`` matches the run's settings (config, budget, seed, evaluation) is not trained again,
so an interrupted benchmark continues where it stopped. Progress goes to :mod:`logging` or to the
``log`` callback of :func:`run_quality_benchmark`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from ..config import FommConfig, GraphParams, load_config
from ..data.synthetic.writer import make_dataset, read_meta
from ..device import set_threads
from ..errors import ConfigError, DataError, UserError
from ..io import write_text_atomic
from ..training import Trainer
from ..visualize import save_figure
from .landmarks import TrainedLandmarkDetector, load_landmark_detector, save_landmark_detector, train_landmark_detector
from .protocol import evaluate_dataset

logger = logging.getLogger(__name__)

__all__ = [
    "COLUMNS",
    "KINDS",
    "VARIANTS",
    "BenchmarkResult",
    "Variant",
    "VariantResult",
    "plot_loss_curves",
    "plot_metrics",
    "run_quality_benchmark",
    "variant_config",
]

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
KINDS = ("sprites", "warped-photos")
#: Settings of the flow-consistency variants (e, f).
FLOW_CONSISTENCY_WEIGHT = 10.0
NEARBY_PAIR_RATIO = 0.5


@dataclass(frozen=True)
class Variant:
    key: str
    name: str
    description: str
    jacobian: bool = True
    occlusion: bool = True
    graph: bool = False
    flow: bool = False


VARIANTS: dict[str, Variant] = {v.key: v for v in (
    Variant("a", "zeroth-order", "no jacobians: keypoint displacements only (Monkey-Net)", jacobian=False),
    Variant("b", "no-occlusion", "no occlusion map", occlusion=False),
    Variant("c", "fomm", "full FOMM (base config)"),
    Variant("d", "fomm+graph", "FOMM + keypoint graph refiner", graph=True),
    Variant("e", "fomm+flow", f"FOMM + flow consistency (weight {FLOW_CONSISTENCY_WEIGHT:g}, "
            f"nearby pairs {NEARBY_PAIR_RATIO:g})", flow=True),
    Variant("f", "fomm+graph+flow", "FOMM + graph + flow consistency", graph=True, flow=True),
)}

#: Table columns: (key in VariantResult.metrics, header).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("L1", "L1"),
    ("AKD", "AKD (px)"),
    ("MKR", "MKR"),
    ("keypoint_error", "kp error (% w)"),
    ("jitter", "jitter (% w)"),
    ("flow_epe", "flow EPE (px)"),
    ("seconds_per_iter", "s / iter"),
)


def variant_config(base: FommConfig, variant: Variant, *, budget: int, seed: int) -> FommConfig:
    """``base`` edited for ``variant`` and for a fixed-budget run (see the module docstring)."""
    config = base.model_copy(deep=True)
    model, train = config.model_params, config.train_params
    if train is None or config.dataset_params is None:
        raise ConfigError("the base config needs dataset_params and train_params")
    if not variant.jacobian:
        model.common_params.estimate_jacobian = False
        train.loss_weights.equivariance_jacobian = 0.0
    if not variant.occlusion:
        model.generator_params.estimate_occlusion_map = False
    model.graph_params = GraphParams() if variant.graph else None
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
    key: str
    name: str
    description: str
    steps: int
    seconds: float
    metrics: dict[str, Optional[float]]
    notes: dict[str, str] = field(default_factory=dict)
    losses: list[dict[str, float]] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    @property
    def seconds_per_iter(self) -> float:
        return self.seconds / max(self.steps, 1)

    def to_dict(self) -> dict:
        return {"key": self.key, "name": self.name, "description": self.description, "steps": self.steps,
                "seconds": self.seconds, "metrics": self.metrics, "notes": self.notes, "losses": self.losses,
                "settings": self.settings}

    @classmethod
    def from_dict(cls, data: dict) -> "VariantResult":
        return cls(data["key"], data["name"], data["description"], int(data["steps"]), float(data["seconds"]),
                   dict(data["metrics"]), dict(data.get("notes", {})), list(data.get("losses", [])),
                   dict(data.get("settings", {})))


@dataclass
class BenchmarkResult:
    dataset: str
    kind: Optional[str]
    budget: int
    seed: int
    variants: list[VariantResult]
    settings: dict = field(default_factory=dict)

    def rows(self) -> list[list[str]]:
        rows = []
        for result in self.variants:
            row = [f"({result.key}) {result.name}"]
            for key, _ in COLUMNS:
                row.append(_format(result.metrics.get(key)))
            rows.append(row)
        return rows

    def markdown(self) -> str:
        header = ["variant"] + [title for _, title in COLUMNS]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(COLUMNS)) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows()]
        notes = {}
        for result in self.variants:
            for key, note in result.notes.items():
                if note and result.metrics.get(key) is None:
                    notes.setdefault(key, note)
        grouped: dict[str, list[str]] = {}
        for key, note in notes.items():
            grouped.setdefault(note, []).append(dict(COLUMNS).get(key, key))
        for note, titles in grouped.items():
            lines.append("")
            lines.append(f"{', '.join(titles)}: n/a ({note})")
        return "\n".join(lines)

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["key", "variant", "steps"] + [key for key, _ in COLUMNS])
        for result in self.variants:
            writer.writerow([result.key, result.name, result.steps]
                            + ["" if result.metrics.get(key) is None else repr(float(result.metrics[key]))
                               for key, _ in COLUMNS])
        return buffer.getvalue()

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "kind": self.kind, "budget": self.budget, "seed": self.seed,
                "settings": self.settings, "variants": [v.to_dict() for v in self.variants]}


def _format(value: Optional[float]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.3f}"
    return f"{value:.4f}"


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


def _settings_key(config: FommConfig, budget: int, eval_settings: dict) -> dict:
    return {"config": config.to_dict(), "budget": budget, "evaluation": eval_settings}


def _train_and_evaluate(variant: Variant, config: FommConfig, run_dir: Path, budget: int, seed: int,
                        detector: Optional[TrainedLandmarkDetector], landmark_note: str,
                        eval_videos: Optional[int], max_train_videos: int, progress: bool) -> VariantResult:
    """Train one variant for exactly ``budget`` steps in ``run_dir`` and evaluate it."""
    trainer = Trainer(config, run_dir, device="cpu", seed=seed, max_steps=budget, progress=progress)
    trained = trainer.train()
    if trained.interrupted:
        raise KeyboardInterrupt
    if trained.steps_this_run != budget:
        raise RuntimeError(f"variant ({variant.key}) trained {trained.steps_this_run} steps instead of {budget}")
    model = trainer.model
    model.eval()
    started = time.perf_counter()
    evaluation = evaluate_dataset(model, config.dataset_params.root_dir, landmark_detector=detector,
                                  num_videos=eval_videos, max_train_videos=max_train_videos)
    eval_seconds = time.perf_counter() - started
    metrics: dict[str, Optional[float]] = {}
    notes: dict[str, str] = {}
    for key, _ in COLUMNS:
        if key == "seconds_per_iter":
            continue
        metric = evaluation.metric(key)
        value = metric.value
        metrics[key] = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
        notes[key] = metric.note
    if detector is None and landmark_note:
        notes["AKD"] = notes["MKR"] = landmark_note
    metrics["seconds_per_iter"] = trained.seconds_per_step
    settings = dict(evaluation.settings)
    settings["eval_seconds"] = eval_seconds
    return VariantResult(variant.key, variant.name, variant.description, trained.steps_this_run, trained.seconds,
                         metrics, notes, trained.history, settings)


def run_quality_benchmark(
    dataset: str,
    budget: int,
    out: str | Path,
    *,
    videos: int = 40,
    frames: int = 32,
    size: int = 64,
    seed: int = 0,
    variants: Sequence[str] = tuple(VARIANTS),
    landmarks: Optional[str | Path] = None,
    landmark_epochs: int = 10,
    eval_videos: Optional[int] = None,
    max_train_videos: int = 16,
    batch_size: Optional[int] = None,
    threads: Optional[int] = 1,
    progress: bool = False,
    log: Callable[[str], object] = logger.info,
) -> BenchmarkResult:
    """Train and evaluate ``variants`` (keys of :data:`VARIANTS`) for ``budget`` iterations each.

    ``dataset``: a kind of :mod:`fomm.data.synthetic` (generated into ``out/dataset`` from
    ``videos``, ``frames``, ``size`` and ``seed``, or reused when it matches) or a dataset folder.
    ``landmarks``: a detector from ``fomm train-landmarks``; by default one is trained for
    ``landmark_epochs`` on a sprites dataset (``out/landmarks.pt``, reused when present).
    ``eval_videos`` limits the test videos, ``max_train_videos`` the train videos of the keypoint
    regression. ``batch_size`` overrides the config's. Writes the outputs listed in the module
    docstring and returns the results.
    """
    if budget < 1:
        raise UserError(f"budget must be at least 1 iteration, got {budget}")
    unknown = [key for key in variants if key not in VARIANTS]
    if unknown or not variants:
        raise UserError(f"unknown variant(s) {', '.join(unknown) or '(none given)'}; choose from "
                        + ", ".join(f"{v.key} ({v.name})" for v in VARIANTS.values()))
    if eval_videos is not None and eval_videos < 1:
        raise DataError(f"the number of evaluation videos must be at least 1, got {eval_videos}")
    if threads:
        set_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

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
    if batch_size is not None:
        assert base.train_params is not None
        base.train_params.batch_size = batch_size

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

    eval_settings = {"eval_videos": eval_videos, "max_train_videos": max_train_videos,
                     "landmarks": landmark_info.get("path")}
    results: list[VariantResult] = []
    for key in variants:
        variant = VARIANTS[key]
        config = variant_config(base, variant, budget=budget, seed=seed)
        run_dir = out / "runs" / f"{variant.key}-{variant.name.replace('+', '-')}"
        saved = run_dir / "result.json"
        wanted = json.loads(json.dumps(_settings_key(config, budget, eval_settings)))
        if saved.is_file():
            data = json.loads(saved.read_text())
            if data.get("run_settings") == wanted:
                log(f"({key}) {variant.name}: reusing {saved}")
                results.append(VariantResult.from_dict(data))
                continue
        log(f"({key}) {variant.name}: training {budget} iterations ...")
        result = _train_and_evaluate(variant, config, run_dir, budget, seed, detector, landmark_note,
                                     eval_videos, max_train_videos, progress)
        data = result.to_dict()
        data["run_settings"] = wanted
        write_text_atomic(saved, json.dumps(data) + "\n")
        log(f"({key}) {variant.name}: {result.seconds_per_iter:.3f} s/iter, L1 {_format(result.metrics['L1'])}, "
            f"keypoint error {_format(result.metrics.get('keypoint_error'))}")
        results.append(result)

    assert base.train_params is not None
    settings = {"videos": videos if kind in KINDS and dataset in KINDS else None, "frames": frames, "size": size,
                "batch_size": base.train_params.batch_size, "threads": torch.get_num_threads(),
                "torch": torch.__version__, "flow_consistency_weight": FLOW_CONSISTENCY_WEIGHT,
                "nearby_pair_ratio": NEARBY_PAIR_RATIO, "landmarks": landmark_info, **eval_settings,
                "total_seconds": time.perf_counter() - started}
    benchmark = BenchmarkResult(str(root), kind, budget, seed, results, settings)
    _write_outputs(benchmark, out)
    return benchmark


# --------------------------------------------------------------------------------------------
# outputs


def _write_outputs(benchmark: BenchmarkResult, out: Path) -> None:
    title = (f"Quality benchmark: {benchmark.kind or benchmark.dataset}, {benchmark.budget} iterations per "
             f"variant, seed {benchmark.seed}\n\n")
    write_text_atomic(out / "table.md", title + benchmark.markdown() + "\n")
    write_text_atomic(out / "table.csv", benchmark.csv())
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


def plot_loss_curves(benchmark: BenchmarkResult, path: Path) -> None:
    """Two panels: the perceptual (reconstruction) loss, the one term every variant shares, and the
    total generator loss (which adds each variant's own terms), both as running means."""
    from matplotlib.figure import Figure  # heavy and only needed here

    figure = Figure(figsize=(11, 4), dpi=80, layout="tight")
    axes = figure.subplots(1, 2)
    window = max(1, benchmark.budget // 20)
    for result in benchmark.variants:
        steps = range(1, len(result.losses) + 1)
        perceptual = [step.get("perceptual", float("nan")) for step in result.losses]
        total = [sum(v for k, v in step.items() if k != "disc_gan") for step in result.losses]
        label = f"({result.key}) {result.name}"
        axes[0].plot(steps, _smooth(perceptual, window), label=label, linewidth=1.2)
        axes[1].plot(steps, _smooth(total, window), label=label, linewidth=1.2)
    axes[0].set_title("perceptual (pixel pyramid) loss")
    axes[1].set_title("total generator loss (variant's own terms)")
    for axis in axes:
        axis.set_xlabel("iteration")
        axis.set_yscale("log")
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    figure.suptitle(f"{benchmark.kind or Path(benchmark.dataset).name}: running mean over {window} iterations")
    save_figure(figure, path)


def plot_metrics(benchmark: BenchmarkResult, path: Path) -> None:
    """One bar chart per metric (lower is better for all), variants side by side; n/a metrics omitted."""
    from matplotlib.figure import Figure  # heavy and only needed here

    columns = [(key, title) for key, title in COLUMNS
               if any(r.metrics.get(key) is not None for r in benchmark.variants)]
    cols = min(4, max(1, len(columns)))
    rows = max(1, math.ceil(len(columns) / cols))
    figure = Figure(figsize=(3.2 * cols, 2.9 * rows), dpi=80, layout="tight")
    axes = figure.subplots(rows, cols, squeeze=False)
    labels = [r.key for r in benchmark.variants]
    colours = [f"C{i}" for i in range(len(labels))]
    for index, (key, title) in enumerate(columns):
        axis = axes[index // cols][index % cols]
        values = [r.metrics.get(key) for r in benchmark.variants]
        axis.bar(labels, [v if v is not None else 0 for v in values], color=colours)
        axis.set_title(title + " (lower is better)", fontsize=9)
        axis.tick_params(labelsize=8)
        axis.grid(axis="y", alpha=0.3)
    for index in range(len(columns), rows * cols):
        axes[index // cols][index % cols].axis("off")
    legend = ", ".join(f"{r.key}: {r.name}" for r in benchmark.variants)
    figure.suptitle(f"{benchmark.kind or Path(benchmark.dataset).name}, {benchmark.budget} iterations: {legend}",
                    fontsize=9)
    save_figure(figure, path)


