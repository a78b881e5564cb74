"""Does a bf16 training run follow the float32 one? Loss curves of ``configs/sprites-64.yaml``.

Trains the sprites-64 config from scratch for ``--steps`` steps three times on the CPU: float32
(``mixed_precision: no``), bf16 (``mixed_precision: bf16``) with the same seed (same initial
weights, batches and equivariance warps: only the arithmetic differs), and float32 with another
seed (``--control-seed``), the yardstick of how far two equally valid runs drift apart anyway.
Prints the moving averages (window ``--window`` steps) of the total loss and of each term every
``--every`` steps, the largest relative difference of each smoothed curve (bf16 vs float32, and
the float32 control vs float32), and seconds per step; ``--plot`` draws the curves.

    python benchmarks/train_precision.py --data /tmp/sprites-40 --steps 300 --threads 2 \\
        --plot docs/assets/train-bf16-sprites.png

The dataset is made when ``--data`` does not exist (``fomm make-dataset sprites --videos 40
--frames 16 --size 64``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from fomm.backends.hardware import device_summary
from fomm.models.registry import load_config
from fomm.data.synthetic.writer import make_dataset
from fomm.training import Trainer
from fomm.visualize import save_figure


@dataclass
class Curve:
    label: str
    history: list[dict[str, float]]
    seconds_per_step: float

    def smoothed(self, term: str, window: int) -> np.ndarray:
        """Moving average of ``term`` (``total``: the sum of the terms) over the last ``window``
        steps; entry ``i`` averages steps ``i - window + 1 .. i``."""
        values = np.array([sum(step.values()) if term == "total" else step[term] for step in self.history])
        cumulative = np.concatenate([[0.0], np.cumsum(values)])
        return (cumulative[window:] - cumulative[:-window]) / window


def train(data: Path, mode: str, seed: int, steps: int, label: str) -> Curve:
    config = load_config("sprites-64")
    assert config.dataset_params is not None and config.train_params is not None
    config.dataset_params.root_dir = str(data)
    config.train_params.mixed_precision = mode
    with tempfile.TemporaryDirectory() as log_dir:
        result = Trainer(config, log_dir, device="cpu", seed=seed, max_steps=steps, progress=False).train()
    return Curve(label, result.history, result.seconds_per_step)


def max_relative_difference(curve: Curve, reference: Curve, window: int, term: str = "total") -> float:
    a, b = curve.smoothed(term, window), reference.smoothed(term, window)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def end_of_run_table(pairs: list[tuple[Curve, Curve]], window: int, terms: list[str]) -> str:
    """Where each seed's fp32 and bf16 runs end (mean of the last ``window`` steps), the paired
    bf16 - fp32 difference, and how far the fp32 runs of different seeds lie apart: bf16 follows
    fp32 when its paired differences are no larger than that spread and lean to no side."""
    final = lambda curve, term: float(curve.smoothed(term, window)[-1])  # noqa: E731
    lines = [f"\nwhere the runs end (mean of the last {window} steps), fp32 / bf16 per seed:\n",
             "| term | " + " | ".join(curve.label.split(" ", 1)[1].strip("()") for curve, _ in pairs)
             + " | bf16 - fp32, mean (range) | fp32 across seeds, max - min |",
             "| --- " * (len(pairs) + 3) + "|"]
    for term in terms:
        cells = [f"{final(a, term):.4f} / {final(b, term):.4f}" for a, b in pairs]
        differences = [final(b, term) - final(a, term) for a, b in pairs]
        fp32_values = [final(a, term) for a, _ in pairs]
        lines.append(f"| {term} | " + " | ".join(cells) + f" | {np.mean(differences):+.4f} "
                     f"({min(differences):+.4f} to {max(differences):+.4f}) | {max(fp32_values) - min(fp32_values):.4f} |")
    return "\n".join(lines)


def plot(curves: list[Curve], window: int, path: Path) -> None:
    terms = ["total", *curves[0].history[0]]
    figure = Figure(figsize=(4 * len(terms), 3.4))
    for index, term in enumerate(terms):
        axes = figure.add_subplot(1, len(terms), index + 1)
        for curve, style in zip(curves, ("-", "--", ":")):
            values = curve.smoothed(term, window)
            axes.plot(np.arange(window, window + len(values)), values, style, label=curve.label)
        axes.set_title(f"{term} (mean of {window} steps)")
        axes.set_xlabel("step")
        axes.set_yscale("log")
        if index == 0:
            axes.legend()
    figure.tight_layout()
    save_figure(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "fomm-sprites-40")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=25, help="table row every this many steps")
    parser.add_argument("--window", type=int, default=25, help="moving-average window (steps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--control-seed", type=int, default=1)
    parser.add_argument("--more-seeds", type=int, nargs="*", default=[],
                        help="also train fp32 and bf16 from each of these seeds and compare where each run ends")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--plot", type=Path, default=None, help="write the curves to this PNG")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if not args.data.exists():
        make_dataset("sprites", args.data, videos=40, frames=16, size=64, seed=0)

    fp32 = train(args.data, "no", args.seed, args.steps, f"fp32 (seed {args.seed})")
    bf16 = train(args.data, "bf16", args.seed, args.steps, f"bf16 (seed {args.seed})")
    control = train(args.data, "no", args.control_seed, args.steps, f"fp32 (seed {args.control_seed})")

    print(f"\n{device_summary(torch.device('cpu'))}; torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"sprites-64, batch 8, {args.steps} steps; s/step: fp32 {fp32.seconds_per_step:.3f}, "
          f"bf16 {bf16.seconds_per_step:.3f}, control {control.seconds_per_step:.3f}\n")
    terms = list(fp32.history[0])
    print("| step | " + " | ".join(f"{term} fp32 / bf16" for term in ["total", *terms]) + " | total: bf16 vs fp32 |")
    print("| --- " * (len(terms) + 3) + "|")
    curves = {term: (fp32.smoothed(term, args.window), bf16.smoothed(term, args.window)) for term in ["total", *terms]}
    for step in range(args.every, args.steps + 1, args.every):
        if step < args.window:
            continue
        row = step - args.window
        cells = [f"{curves[term][0][row]:.4f} / {curves[term][1][row]:.4f}" for term in ["total", *terms]]
        a, b = curves["total"][1][row], curves["total"][0][row]
        print(f"| {step} | " + " | ".join(cells) + f" | {100 * (a - b) / b:+.1f} % |")
    print(f"\nlargest relative difference of the smoothed curves ({args.window}-step means, steps "
          f"{args.window}-{args.steps}), against fp32 seed {args.seed}:\n")
    print(f"| term | bf16 (seed {args.seed}) | fp32 (seed {args.control_seed}) |")
    print("| --- | --- | --- |")
    for term in ["total", *terms]:
        print(f"| {term} | {100 * max_relative_difference(bf16, fp32, args.window, term):.1f} % "
              f"| {100 * max_relative_difference(control, fp32, args.window, term):.1f} % |")
    if args.more_seeds:
        pairs = [(fp32, bf16), (control, train(args.data, "bf16", args.control_seed, args.steps,
                                               f"bf16 (seed {args.control_seed})"))]
        pairs += [(train(args.data, "no", seed, args.steps, f"fp32 (seed {seed})"),
                   train(args.data, "bf16", seed, args.steps, f"bf16 (seed {seed})")) for seed in args.more_seeds]
        print(end_of_run_table(pairs, args.window, ["total", *terms]))
    if args.plot is not None:
        plot([fp32, bf16, control], args.window, args.plot)
        print(f"curves: {args.plot}")


if __name__ == "__main__":
    main()
