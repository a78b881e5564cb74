"""An experiment, not library core: the learning curve of one variant of the variants experiment
(``fomm experiment curve --dataset sprites --budget 3000 --every 250``), to choose the budget of
``fomm experiment variants``.

The variant (full FOMM, ``c``, by default) is trained once, exactly as the variants experiment
trains it (:func:`fomm.experiments.variants.variant_config`: constant learning rate, cached
frames), in segments of ``every`` iterations. After each segment the trainer's checkpoint is kept
as ``checkpoints/step-NNNNNN.pth.tar`` and the model is evaluated like a run of the experiment
(:func:`fomm.experiments.variants.evaluate_variant`); the untrained model is evaluated too
(step 0). Each segment resumes from the previous checkpoint, which on the CPU reproduces the
uninterrupted run (:mod:`fomm.training.trainer`), so the point at step ``s`` is the experiment's
run of the same variant and seed at ``--budget s``.

Outputs in ``out`` (which may be the variants experiment's folder: the dataset and landmark
detector are shared): ``curve.csv``, ``curve.md``, ``curve.json``, ``curve.png`` and the run in
``runs/curve-<variant>/seed-<s>/`` (checkpoints, logs, ``curve-state.json``). A rerun with the same
settings continues after the last evaluated step.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from ..checkpoint import read_checkpoint
from ..config import FommConfig
from ..device import set_threads
from ..errors import UserError
from ..files import write_text_atomic
from ..models import build_model
from ..training import CHECKPOINT_NAME, Trainer
from ..training.rng import seed_everything
from ..visualize import save_figure
from .variants import (
    VARIANTS,
    ExperimentSetup,
    check_variants,
    evaluate_variant,
    format_value,
    prepare_experiment,
    run_settings_key,
    variant_config,
)

logger = logging.getLogger(__name__)

__all__ = ["CURVE_METRICS", "CurvePoint", "LearningCurve", "curve_steps", "plot_learning_curve",
           "run_learning_curve"]

#: The metrics on the curve: (key of a run's metrics, header). All lower-is-better.
CURVE_METRICS: tuple[tuple[str, str], ...] = (
    ("L1", "L1"),
    ("cross_L1_moving", "cross L1 moving"),
    ("keypoint_error", "kp error (% w)"),
    ("AKD", "AKD (px)"),
    ("jitter", "jitter (% w)"),
)
#: A metric has "arrived" at the first step within this fraction of its best value on the curve.
NEAR_BEST = 0.05
STATE_NAME = "curve-state.json"


@dataclass
class CurvePoint:
    """The model after ``step`` iterations: its metrics (None: n/a), the cumulative training wall
    clock, and the mean perceptual loss of the segment that led here (None at step 0)."""

    step: int
    train_seconds: float
    metrics: dict[str, Optional[float]]
    train_perceptual: Optional[float] = None

    def to_dict(self) -> dict:
        return {"step": self.step, "train_seconds": self.train_seconds, "metrics": self.metrics,
                "train_perceptual": self.train_perceptual}

    @classmethod
    def from_dict(cls, data: dict) -> "CurvePoint":
        return cls(int(data["step"]), float(data["train_seconds"]), dict(data["metrics"]),
                   data.get("train_perceptual"))


@dataclass
class LearningCurve:
    dataset: str
    kind: Optional[str]
    variant: str
    seed: int
    budget: int
    every: int
    points: list[CurvePoint]
    notes: dict[str, str] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    split: str = "validation"

    def near_best_step(self, metric: str) -> Optional[int]:
        """The first step whose ``metric`` is within :data:`NEAR_BEST` of the best on the curve."""
        values = [(p.step, p.metrics.get(metric)) for p in self.points if p.metrics.get(metric) is not None]
        if not values:
            return None
        best = min(value for _, value in values)
        return next(step for step, value in values if value <= best + NEAR_BEST * abs(best))

    def markdown(self) -> str:
        """The curve as a table, then the step at which each metric comes near its best."""
        header = ["step", "train s"] + [title for _, title in CURVE_METRICS] + ["train loss"]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---:"] * len(header)) + "|"]
        for point in self.points:
            cells = [str(point.step), f"{point.train_seconds:.0f}"]
            cells += [format_value(point.metrics.get(key)) for key, _ in CURVE_METRICS]
            cells.append(format_value(point.train_perceptual))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        arrivals = []
        for key, title in CURVE_METRICS:
            step = self.near_best_step(key)
            arrivals.append(f"{title}: n/a ({self.notes.get(key) or 'no value'})" if step is None
                            else f"{title}: step {step}")
        lines.append(f"First step within {NEAR_BEST * 100:g} % of the best value on the curve: "
                     + "; ".join(arrivals) + ".")
        return "\n".join(lines)

    def csv(self) -> str:
        """``step, train_seconds, <metrics>, train_perceptual``; n/a values are empty."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["step", "train_seconds"] + [key for key, _ in CURVE_METRICS] + ["train_perceptual"])
        for point in self.points:
            values = [point.metrics.get(key) for key, _ in CURVE_METRICS] + [point.train_perceptual]
            writer.writerow([point.step, repr(point.train_seconds)]
                            + ["" if value is None else repr(float(value)) for value in values])
        return buffer.getvalue()

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "kind": self.kind, "split": self.split, "variant": self.variant,
                "seed": self.seed, "budget": self.budget, "every": self.every, "notes": self.notes,
                "settings": self.settings,
                "near_best": {key: self.near_best_step(key) for key, _ in CURVE_METRICS},
                "points": [point.to_dict() for point in self.points]}


def curve_steps(budget: int, every: int) -> list[int]:
    """``0, every, 2 every, ...`` up to ``budget``, which is always the last step."""
    steps = list(range(0, budget, every))
    return steps + [budget]


def run_learning_curve(
    dataset: str,
    budget: int,
    every: int,
    out: str | Path,
    *,
    variant: str = "c",
    videos: int = 40,
    frames: int = 32,
    size: int = 64,
    seed: int = 0,
    landmarks: Optional[str | Path] = None,
    landmark_epochs: int = 10,
    eval_videos: Optional[int] = None,
    max_train_videos: int = 16,
    batch_size: Optional[int] = None,
    mixed_precision: Optional[str] = None,
    split: str = "validation",
    threads: Optional[int] = 1,
    progress: bool = False,
    log: Callable[[str], object] = logger.info,
) -> LearningCurve:
    """Train ``variant`` for ``budget`` iterations with seed ``seed``, evaluating it at step 0 and
    every ``every`` iterations (and at ``budget``) on ``split``: the validation split by default,
    since a curve is for choosing (the budget), and choices are not made on the test split. The
    other arguments are those of :func:`fomm.experiments.variants.run_variants_experiment`. Writes
    the outputs listed in the module docstring and returns the curve."""
    if budget < 1:
        raise UserError(f"budget must be at least 1 iteration, got {budget}")
    if every < 1:
        raise UserError(f"the evaluation interval must be at least 1 iteration, got {every}")
    check_variants([variant])
    if threads:
        set_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    setup = prepare_experiment(dataset, out, videos=videos, frames=frames, size=size, seed=seed,
                               landmarks=landmarks, landmark_epochs=landmark_epochs, eval_videos=eval_videos,
                               max_train_videos=max_train_videos, batch_size=batch_size,
                               mixed_precision=mixed_precision, split=split, log=log)
    chosen = VARIANTS[variant]
    if chosen.evaluates is not None:
        raise UserError(f"variant {variant} ({chosen.name}) trains nothing: it has no learning curve")
    config = variant_config(setup.base_for(chosen), chosen, budget=budget, seed=seed)
    run_dir = out / "runs" / f"curve-{chosen.folder}" / f"seed-{seed}"
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    wanted = json.loads(json.dumps({**run_settings_key(config, budget, setup.eval_settings), "every": every}))
    points, notes = _load_state(run_dir / STATE_NAME, wanted)
    checkpoint = _checkpoint_at(run_dir, config, points[-1].step) if points and points[-1].step > 0 else None
    if points and points[-1].step > 0 and checkpoint is None:
        log(f"{chosen.label}: no checkpoint of step {points[-1].step} in {run_dir}; training the curve again")
        del points[1:]  # step 0, the untrained model, does not depend on the checkpoint
    if points:
        log(f"{chosen.label}: continuing the curve after step {points[-1].step}")

    def record(point: CurvePoint) -> None:
        points.append(point)
        write_text_atomic(run_dir / STATE_NAME, json.dumps({"run_settings": wanted, "notes": notes,
                                                            "points": [p.to_dict() for p in points]}) + "\n")
        log(f"{chosen.label}, step {point.step}: " + ", ".join(f"{title} {format_value(point.metrics.get(key))}"
                                                             for key, title in CURVE_METRICS))

    if not points:
        seed_everything(seed)  # the initial weights of the Trainer below, which seeds the same way
        metrics, step_notes, _ = evaluate_variant(build_model(config), setup)
        notes.update(step_notes)
        record(CurvePoint(0, 0.0, metrics))
    for step in curve_steps(budget, every)[1:]:
        done = points[-1].step
        if step <= done:
            continue
        log(f"{chosen.label}: training steps {done + 1}..{step} ...")
        trainer = Trainer(config, run_dir, device="cpu", seed=seed, checkpoint=checkpoint if done else None,
                          max_steps=step - done, progress=progress)
        trained = trainer.train()
        if trained.interrupted:
            raise KeyboardInterrupt
        if trained.steps_this_run != step - done:
            raise RuntimeError(f"the curve's run trained {trained.steps_this_run} steps instead of {step - done}")
        checkpoint = trainer.checkpoint_path
        shutil.copyfile(checkpoint, run_dir / "checkpoints" / f"step-{step:06d}.pth.tar")
        metrics, step_notes, _ = evaluate_variant(trainer.model, setup)
        notes.update(step_notes)
        perceptual = [values["perceptual"] for values in trained.history if "perceptual" in values]
        record(CurvePoint(step, points[-1].train_seconds + trained.seconds, metrics,
                          sum(perceptual) / len(perceptual) if perceptual else None))

    curve = LearningCurve(str(setup.root), setup.kind, variant, seed, budget, every, list(points),
                          {k: v for k, v in notes.items() if v}, _settings(setup, config), split=split)
    _write_outputs(curve, out)
    return curve


def _load_state(path: Path, wanted: dict) -> tuple[list[CurvePoint], dict[str, str]]:
    """The points and notes of an earlier call with the same settings, else nothing."""
    if not path.is_file():
        return [], {}
    data = json.loads(path.read_text())
    if data.get("run_settings") != wanted:
        return [], {}
    return [CurvePoint.from_dict(point) for point in data.get("points", [])], dict(data.get("notes", {}))


def _checkpoint_at(run_dir: Path, config: FommConfig, step: int) -> Optional[Path]:
    """The run's checkpoint when it was written at global step ``step``, else None."""
    path = run_dir / CHECKPOINT_NAME
    if not path.is_file():
        return None
    try:
        data = read_checkpoint(path, config)
    except UserError:
        return None
    return path if int(data.training_state.get("global_step", -1)) == step else None


def _settings(setup: ExperimentSetup, config: FommConfig) -> dict:
    assert config.train_params is not None
    return {"batch_size": config.train_params.batch_size, "mixed_precision": config.train_params.mixed_precision,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__, "landmarks": setup.landmark_info, **setup.eval_settings}


# --------------------------------------------------------------------------------------------
# outputs


def _write_outputs(curve: LearningCurve, out: Path) -> None:
    title = (f"Learning curve: {VARIANTS[curve.variant].label} on {curve.kind or curve.dataset}, seed {curve.seed}, "
             f"evaluated on the {curve.split} split every {curve.every} of {curve.budget} iterations\n\n")
    write_text_atomic(out / "curve.md", title + curve.markdown() + "\n")
    write_text_atomic(out / "curve.csv", curve.csv())
    write_text_atomic(out / "curve.json", json.dumps(curve.to_dict(), indent=1) + "\n")
    plot_learning_curve(curve, out / "curve.png")


def plot_learning_curve(curve: LearningCurve, path: Path) -> None:
    """One panel per metric of :data:`CURVE_METRICS` that has values, against the iteration."""
    from matplotlib.figure import Figure  # heavy and only needed here

    shown = [(key, title) for key, title in CURVE_METRICS
             if any(point.metrics.get(key) is not None for point in curve.points)]
    figure = Figure(figsize=(3.4 * max(1, len(shown)), 3.0), dpi=80, layout="tight")
    axes = figure.subplots(1, max(1, len(shown)), squeeze=False)[0]
    for axis, (key, title) in zip(axes, shown):
        steps = [p.step for p in curve.points if p.metrics.get(key) is not None]
        values = [p.metrics[key] for p in curve.points if p.metrics.get(key) is not None]
        axis.plot(steps, values, marker="o", markersize=3, linewidth=1.2)
        near = curve.near_best_step(key)
        if near is not None:
            axis.axvline(near, color="grey", linestyle=":", linewidth=1)
        axis.set_title(title + " (lower is better)", fontsize=9)
        axis.set_xlabel("iteration", fontsize=8)
        axis.tick_params(labelsize=8)
        axis.grid(alpha=0.3)
    if not shown:
        axes[0].axis("off")
    figure.suptitle(f"{VARIANTS[curve.variant].label}, {curve.kind or Path(curve.dataset).name}, seed {curve.seed} "
                    f"(dotted: within {NEAR_BEST * 100:g} % of the best)", fontsize=9)
    save_figure(figure, path)
