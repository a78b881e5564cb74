"""The variants experiment's figures: loss curves and metric bars (matplotlib, Agg)."""

from __future__ import annotations

import math
from pathlib import Path

from ...visualize import save_figure
from .definitions import COLUMNS
from .report import VariantsResult

__all__ = ["plot_loss_curves", "plot_metrics"]


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


def plot_loss_curves(result: VariantsResult, path: Path) -> None:
    """Two panels: the perceptual (reconstruction) loss, the one term every variant shares, and the
    total generator loss (which adds each variant's own terms), both as running means of the mean
    over seeds."""
    from matplotlib.figure import Figure  # heavy and only needed here

    figure = Figure(figsize=(11, 4), dpi=80, layout="tight")
    axes = figure.subplots(1, 2)
    window = max(1, result.budget // 20)
    for key in result.variant_keys():
        runs = result.runs_of(key)
        if not all(run.losses for run in runs):
            continue  # a variant that trains nothing (it evaluates another's models)
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
    seeds = f", mean of {len(result.seeds)} seeds" if len(result.seeds) > 1 else ""
    figure.suptitle(f"{result.kind or Path(result.dataset).name}: running mean over {window} iterations"
                    f"{seeds}")
    save_figure(figure, path)


def plot_metrics(result: VariantsResult, path: Path) -> None:
    """One bar chart per metric (lower is better for all), variants side by side, the bar at the
    mean over seeds with the std as an error bar and each seed's value as a dot, and the no-motion
    baseline as a dashed line where it has a value; n/a metrics omitted."""
    from matplotlib.figure import Figure  # heavy and only needed here

    keys = result.variant_keys()
    columns = [(metric, title) for metric, title in COLUMNS
               if any(result.summary(key, metric) is not None for key in keys)]
    cols = min(4, max(1, len(columns)))
    rows = max(1, math.ceil(len(columns) / cols))
    figure = Figure(figsize=(3.2 * cols, 2.9 * rows), dpi=80, layout="tight")
    axes = figure.subplots(rows, cols, squeeze=False)
    colours = [f"C{i}" for i in range(len(keys))]
    for index, (metric, title) in enumerate(columns):
        axis = axes[index // cols][index % cols]
        summaries = [result.summary(key, metric) for key in keys]
        axis.bar(keys, [s.mean if s is not None else 0 for s in summaries], color=colours,
                 yerr=[s.std if s is not None and s.std is not None else 0 for s in summaries], capsize=3)
        if len(result.seeds) > 1:
            for position, key in enumerate(keys):
                values = [run.metrics[metric] for run in result.runs_of(key) if run.metrics.get(metric) is not None]
                axis.scatter([position] * len(values), values, color="black", s=6, zorder=3)
        baseline = result.no_motion(metric)
        if baseline is not None:
            axis.axhline(baseline, color="black", linestyle="--", linewidth=1, label="no motion")
            axis.legend(fontsize=7, loc="lower right")
        axis.set_title(title + " (lower is better)", fontsize=9)
        axis.tick_params(labelsize=8)
        axis.grid(axis="y", alpha=0.3)
    for index in range(len(columns), rows * cols):
        axes[index // cols][index % cols].axis("off")
    legend = ", ".join(f"{key}: {result.runs_of(key)[0].name}" for key in keys)
    figure.suptitle(f"{result.kind or Path(result.dataset).name}, {result.budget} iterations, "
                    f"{len(result.seeds)} seed(s): {legend}", fontsize=9)
    save_figure(figure, path)

