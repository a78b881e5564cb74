"""Running the variants experiment: the dataset and landmark detector every run shares
(:func:`prepare_experiment`), one run (train one variant with one seed, then evaluate), and the
whole experiment over variants and seeds (:func:`run_variants_experiment`), which writes the
tables and figures."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from ...config import FommConfig, load_config
from ...data.synthetic.writer import make_dataset, read_meta
from ...device import set_threads
from ...errors import DataError, UserError
from ...evaluation.landmarks import (
    TrainedLandmarkDetector,
    load_landmark_detector,
    save_landmark_detector,
    train_landmark_detector,
)
from ...evaluation.protocol import evaluate_dataset
from ...io import write_text_atomic
from ...models import FommModel
from ...training import Trainer
from .definitions import (
    COLUMNS,
    CONFIGS,
    FLOW_CONSISTENCY_WEIGHT,
    KINDS,
    NEARBY_PAIR_RATIO,
    VARIANTS,
    Variant,
    check_variants,
    variant_config,
)
from .plots import plot_loss_curves, plot_metrics
from .report import VariantResult, VariantsResult, format_value

logger = logging.getLogger(__name__)

__all__ = ["ExperimentSetup", "evaluate_variant", "prepare_experiment", "run_settings_key", "run_variants_experiment"]


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
class ExperimentSetup:
    """What every run of a result shares: the dataset, its base config, the landmark detector
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


def prepare_experiment(dataset: str, out: Path, *, videos: int, frames: int, size: int, seed: int,
                      landmarks: Optional[str | Path], landmark_epochs: int, eval_videos: Optional[int],
                      max_train_videos: int, batch_size: Optional[int],
                      mixed_precision: Optional[str] = None,
                      log: Callable[[str], object] = logger.info) -> ExperimentSetup:
    """The dataset (generated into ``out/dataset`` from ``seed`` or a folder), its base config and
    the landmark detector (``landmarks``, or one trained from ``seed`` into ``out/landmarks.pt``
    and reused from there); see :func:`run_variants_experiment` for the arguments."""
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
    return ExperimentSetup(root, kind, size, base, detector, landmark_note, landmark_info, eval_videos,
                          max_train_videos)


def evaluate_variant(model: FommModel, setup: ExperimentSetup,
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
                        setup: ExperimentSetup, progress: bool) -> VariantResult:
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



def run_variants_experiment(
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
) -> VariantsResult:
    """Train and evaluate ``variants`` (keys of :data:`VARIANTS`) for ``budget`` iterations each,
    once per training seed ``seed, seed + 1, ..., seed + seeds - 1``.

    ``dataset``: a kind of :mod:`fomm.data.synthetic` (generated into ``out/dataset`` from
    ``videos``, ``frames``, ``size`` and ``seed``, or reused when it matches) or a dataset folder.
    ``landmarks``: a detector from ``fomm train-landmarks``; by default one is trained for
    ``landmark_epochs`` on a sprites dataset (``out/landmarks.pt``, reused when present).
    ``eval_videos`` limits the test videos, ``max_train_videos`` the train videos of the keypoint
    regression. ``batch_size`` and ``mixed_precision`` (``train_params.mixed_precision``: no, auto,
    bf16, fp16) override the config's, for every variant alike. Runs go seed by seed (every variant with the
    first seed, then with the second, ...), so an interrupted result has comparable runs. Writes
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
    setup = prepare_experiment(dataset, out, videos=videos, frames=frames, size=size, seed=seed,
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
    result = VariantsResult(str(setup.root), setup.kind, budget, training_seeds, ordered, settings)
    _write_outputs(result, out)
    return result


def _run_once(variant: Variant, setup: ExperimentSetup, out: Path, budget: int, seed: int, progress: bool,
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


def _write_outputs(result: VariantsResult, out: Path) -> None:
    seeds = ", ".join(str(s) for s in result.seeds)
    spread = "mean ± std over seeds" if len(result.seeds) > 1 else "one seed"
    title = (f"Quality result: {result.kind or result.dataset}, {result.budget} iterations per "
             f"variant, training seeds {seeds} ({spread}; data seed {result.seed})\n\n")
    write_text_atomic(out / "table.md", title + result.markdown() + "\n")
    write_text_atomic(out / "table.csv", result.csv())
    write_text_atomic(out / "runs.csv", result.runs_csv())
    write_text_atomic(out / "results.json", json.dumps(result.to_dict(), indent=1) + "\n")
    plot_loss_curves(result, out / "loss_curves.png")
    plot_metrics(result, out / "metrics.png")
