"""Running the variants experiment: what every run shares (:func:`prepare_experiment`: the
training dataset, the validation dataset, the landmark detector), one run (train one variant with
one seed, then evaluate it on the chosen split), and the whole experiment over variants and seeds
(:func:`run_variants_experiment`), which writes the tables and figures.

Two splits, two uses. The **test** split (the training dataset's own test videos and their cross
pairs) reports; nothing is chosen on it. The **validation** split (the test videos and cross pairs
of a second dataset generated from ``seed +`` :data:`VALIDATION_SEED_OFFSET`, never trained on)
is for choices, such as the budget from a learning curve. Every table names its split.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from ...checkpoint import load_checkpoint
from ...config import FommConfig
from ...models.registry import load_config
from ...data.synthetic.writer import CROSS_FOLDER, is_test_video, make_dataset, read_meta
from ...device import set_threads
from ...errors import DataError, UserError
from ...evaluation.cross_identity import ModelAnimation, evaluate_cross_identity
from ...evaluation.landmarks import (
    TrainedLandmarkDetector,
    load_landmark_detector,
    save_landmark_detector,
    train_landmark_detector,
)
from ...evaluation.metrics import ColorHistogramEmbedding, smooth_tracks
from ...evaluation.protocol import evaluate_dataset
from ...evaluation.results import EvaluationResult
from ...files import write_text_atomic
from ...models import MotionModel, build_model
from ...training import CHECKPOINT_NAME, Trainer
from .definitions import (
    COLUMNS,
    CONFIGS,
    FLOW_CONSISTENCY_WEIGHT,
    KINDS,
    NEARBY_PAIR_RATIO,
    NO_MOTION,
    VARIANTS,
    Variant,
    check_variants,
    variant_config,
)
from .plots import plot_loss_curves, plot_metrics
from .report import VariantResult, VariantsResult, format_value

logger = logging.getLogger(__name__)

__all__ = ["SPLITS", "VALIDATION_SEED_OFFSET", "ExperimentSetup", "evaluate_variant", "prepare_experiment",
           "run_settings_key", "run_variants_experiment"]

SPLITS = ("test", "validation")
#: The validation dataset is generated from the data seed plus this.
VALIDATION_SEED_OFFSET = 1000
#: The cross-identity metrics a run keeps: its key in the run's metrics -> the evaluation's name.
CROSS_METRICS = {"cross_L1": "L1", "cross_L1_moving": "L1_moving", "cross_L1_moving_oracle": "L1_moving_oracle",
                 "cross_pose_error": "pose_error", "cross_appearance": "appearance",
                 "cross_L1_repeat_source": "L1_repeat_source",
                 "cross_L1_moving_repeat_source": "L1_moving_repeat_source",
                 "cross_appearance_repeat_source": "appearance_repeat_source",
                 "cross_moving_vs_repeat_source": "moving_vs_repeat_source",
                 "cross_moving_vs_oracle": "moving_vs_oracle", "cross_transfer_gap": "transfer_gap"}


# --------------------------------------------------------------------------------------------
# what every run shares


def _cross_pairs_for(videos: int, test_fraction: float) -> int:
    """As many cross pairs as test videos (each test video is a source about once)."""
    tests = sum(is_test_video(i, test_fraction) for i in range(videos))
    return tests if tests >= 2 else 0


def _make_dataset(kind: str, out: Path, videos: int, frames: int, size: int, seed: int) -> Path:
    """Generate (or reuse, when its meta.json matches) the synthetic dataset in ``out``, with cross
    pairs on its test split."""
    meta = read_meta(out)
    pairs = _cross_pairs_for(videos, 0.2)
    wanted = {"kind": kind, "videos": videos, "frames": frames, "seed": seed}
    if (meta and all(meta.get(k) == v for k, v in wanted.items()) and list(meta.get("frame_shape", []))[:1] == [size]
            and meta.get("cross_pairs", 0) == pairs):
        logger.info("reusing the %s dataset in %s", kind, out)
        return out
    logger.info("generating the %s dataset (%d videos x %d frames at %d px, seed %d, %d cross pairs) in %s",
                kind, videos, frames, size, seed, pairs, out)
    make_dataset(kind, out, videos=videos, frames=frames, size=size, seed=seed, workers=1, cross_pairs=pairs,
                 overwrite=bool(meta) or (out / "train").exists())
    return out


def _base_config(kind: Optional[str], root: Path, size: int, name: Optional[str] = None) -> Any:
    """The base config of a variant: ``name`` (a packaged config or a YAML path), else the
    dataset's FOMM config; pointed at ``root`` at ``size``."""
    config = load_config(name if name is not None else CONFIGS / f"{kind if kind in KINDS else 'sprites'}-64.yaml")
    assert config.dataset_params is not None
    config.dataset_params.root_dir = str(root)
    config.dataset_params.frame_shape = (size, size, 3)
    return config


def run_settings_key(config: Any, budget: int, eval_settings: dict) -> dict:
    return {"config": config.to_dict(), "budget": budget, "evaluation": eval_settings}


@dataclass
class ExperimentSetup:
    """What every run of the experiment shares: the training dataset ``root``, the split runs are
    evaluated on (``split``, in ``evaluation_root``), the base config, the landmark detector (or
    the reason there is none) and the evaluation settings."""

    root: Path
    kind: Optional[str]
    size: int
    base: FommConfig
    detector: Optional[TrainedLandmarkDetector]
    landmark_note: str
    landmark_info: dict
    eval_videos: Optional[int]
    max_train_videos: int
    split: str = "test"
    evaluation_root: Optional[Path] = None
    batch_size: Optional[int] = None
    mixed_precision: Optional[str] = None

    @property
    def evaluated(self) -> Path:
        """The dataset whose test videos and cross pairs the runs are evaluated on."""
        return self.evaluation_root if self.evaluation_root is not None else self.root

    @property
    def eval_settings(self) -> dict:
        return {"eval_videos": self.eval_videos, "max_train_videos": self.max_train_videos,
                "landmarks": self.landmark_info.get("path"), "split": self.split, "evaluated": str(self.evaluated),
                "cross_identity": (self.evaluated / CROSS_FOLDER).is_dir()}

    def base_for(self, variant: Variant) -> Any:
        """``variant``'s base config with the experiment's common overrides."""
        config = self.base if variant.base is None else _base_config(self.kind, self.root, self.size, variant.base)
        config = config.model_copy(deep=True)
        assert config.train_params is not None
        if self.batch_size is not None:
            config.train_params.batch_size = self.batch_size
        if self.mixed_precision is not None:
            # Every variant trains in the same arithmetic, so the comparison stays on equal terms.
            config.train_params.mixed_precision = self.mixed_precision
        return config


def prepare_experiment(dataset: str, out: Path, *, videos: int, frames: int, size: int, seed: int,
                       landmarks: Optional[str | Path], landmark_epochs: int, eval_videos: Optional[int],
                       max_train_videos: int, batch_size: Optional[int],
                       mixed_precision: Optional[str] = None, split: str = "test",
                       log: Callable[[str], object] = logger.info) -> ExperimentSetup:
    """The training dataset (generated into ``out/dataset`` from ``seed``, or a folder), the
    evaluation split (``test``: that dataset's; ``validation``: a dataset generated into
    ``out/validation`` from ``seed +`` :data:`VALIDATION_SEED_OFFSET`), the base config and the
    landmark detector (``landmarks``, or one trained from ``seed`` into ``out/landmarks.pt`` and
    reused from there); see :func:`run_variants_experiment` for the arguments."""
    if eval_videos is not None and eval_videos < 1:
        raise DataError(f"the number of evaluation videos must be at least 1, got {eval_videos}")
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
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
    evaluation_root = None
    if split == "validation":
        if kind not in KINDS:
            raise UserError("a validation split is generated for the synthetic datasets only; evaluate a dataset "
                            "folder on its test split")
        evaluation_root = _make_dataset(kind, out / "validation", videos, frames, size, seed + VALIDATION_SEED_OFFSET)
    base = _base_config(kind, root, size)

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
                           max_train_videos, split, evaluation_root, batch_size, mixed_precision)


# --------------------------------------------------------------------------------------------
# one run


def _metric_values(evaluation: EvaluationResult, names: dict[str, str]) -> tuple[dict, dict]:
    """``{our key: value}`` (None: n/a) and notes of the evaluation's metrics named in ``names``."""
    values: dict[str, Optional[float]] = {}
    notes: dict[str, str] = {}
    for key, name in names.items():
        try:
            metric = evaluation.metric(name)
        except KeyError:
            values[key], notes[key] = None, f"not computed by this version of the evaluation ({name})"
            continue
        value = metric.value
        values[key] = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
        notes[key] = metric.note
    return values, notes


def evaluate_variant(model: MotionModel, setup: ExperimentSetup, keypoint_filter: bool = False
                     ) -> tuple[dict[str, Optional[float]], dict[str, str], dict]:
    """Evaluate ``model`` on ``setup``'s split: self-reconstruction on its test videos and, where
    the dataset has them, its cross pairs (cross-identity, relative motion). Returns the values
    (None: n/a) of the table's columns and of the no-motion baseline, their notes, and the
    evaluations' settings (with ``eval_seconds``). With ``keypoint_filter`` the model's keypoint
    tracks go through :func:`~fomm.evaluation.metrics.smooth_tracks` and only the keypoint metrics
    are kept (the frames are not animated with the filtered keypoints)."""
    model.eval()
    started = time.perf_counter()
    evaluation = evaluate_dataset(model, setup.evaluated, landmark_detector=setup.detector,
                                  num_videos=setup.eval_videos, max_train_videos=setup.max_train_videos,
                                  keypoint_filter=smooth_tracks if keypoint_filter else None)
    self_names = {key: key for key, _ in COLUMNS if not key.startswith("cross_") and key != "seconds_per_iter"}
    if keypoint_filter:
        self_names = {key: key for key in ("keypoint_error", "jitter", "kp_acceleration")}
    else:
        self_names["L1_first_frame"] = "L1_first_frame"
    metrics, notes = _metric_values(evaluation, self_names)
    settings = {"self_reconstruction": dict(evaluation.settings)}
    has_pairs = (setup.evaluated / CROSS_FOLDER).is_dir()
    if has_pairs and not keypoint_filter:
        cross = evaluate_cross_identity(ModelAnimation(model), setup.evaluated, model.frame_shape,
                                        landmark_detector=setup.detector, embedding=ColorHistogramEmbedding(),
                                        num_pairs=setup.eval_videos)
        values, cross_notes = _metric_values(cross, CROSS_METRICS)
        metrics.update(values)
        notes.update(cross_notes)
        settings["cross_identity"] = dict(cross.settings)
    else:
        reason = ("keypoint metrics only: the temporal filter does not animate" if keypoint_filter
                  else "the dataset has no cross pairs")
        for key in CROSS_METRICS:
            metrics.setdefault(key, None)
            notes.setdefault(key, reason)
    for key, _ in COLUMNS:
        if key != "seconds_per_iter" and key not in metrics:
            metrics[key], notes[key] = None, "keypoint metrics only: the temporal filter does not animate"
    if setup.detector is None and setup.landmark_note:
        for key in ("AKD", "MKR", "cross_pose_error"):
            if metrics.get(key) is None:
                notes[key] = setup.landmark_note
    settings["eval_seconds"] = time.perf_counter() - started
    return metrics, notes, settings


def _train_and_evaluate(variant: Variant, config: Any, run_dir: Path, budget: int, seed: int,
                        setup: ExperimentSetup, progress: bool) -> VariantResult:
    """Train one variant for exactly ``budget`` steps with training seed ``seed`` in ``run_dir``
    and evaluate it."""
    trainer = Trainer(config, run_dir, device="cpu", seed=seed, max_steps=budget, progress=progress)
    trained = trainer.train()
    if trained.interrupted:
        raise KeyboardInterrupt
    if trained.steps_this_run != budget:
        raise RuntimeError(f"variant ({variant.key}) trained {trained.steps_this_run} steps instead of {budget}")
    metrics, notes, settings = evaluate_variant(trainer.model, setup)
    metrics["seconds_per_iter"] = trained.seconds_per_step
    return VariantResult(variant.key, variant.name, variant.description, trained.steps_this_run, trained.seconds,
                         metrics, notes, trained.history, settings, seed)


def _evaluate_again(variant: Variant, source: VariantResult, source_dir: Path, setup: ExperimentSetup,
                    seed: int) -> VariantResult:
    """A variant that trains nothing: the checkpoint of ``source`` (the run of the variant it
    evaluates, same seed) evaluated with ``variant``'s keypoint filter."""
    model = load_checkpoint(source_dir / CHECKPOINT_NAME, device="cpu")
    metrics, notes, settings = evaluate_variant(model, setup, keypoint_filter=variant.keypoint_filter)
    metrics["seconds_per_iter"] = None
    notes["seconds_per_iter"] = f"trains nothing: evaluates ({variant.evaluates})'s models"
    return VariantResult(variant.key, variant.name, variant.description, source.steps, 0.0, metrics, notes, [],
                         settings, seed)


def _run_once(variant: Variant, setup: ExperimentSetup, out: Path, budget: int, seed: int, progress: bool,
              log: Callable[[str], object], done: dict[tuple[str, int], VariantResult]) -> VariantResult:
    """One run in ``out/runs/<variant>/seed-<seed>``, or its saved result when the settings match."""
    source_key = variant.evaluates or variant.key
    config = variant_config(setup.base_for(VARIANTS[source_key]), VARIANTS[source_key], budget=budget, seed=seed)
    run_dir = out / "runs" / variant.folder / f"seed-{seed}"
    saved = run_dir / "result.json"
    settings = run_settings_key(config, budget, setup.eval_settings)
    settings["keypoint_filter"] = variant.keypoint_filter
    wanted = json.loads(json.dumps(settings))
    if saved.is_file():
        data = json.loads(saved.read_text())
        if data.get("run_settings") == wanted:
            log(f"{variant.label}, seed {seed}: reusing {saved}")
            return VariantResult.from_dict(data)
    if variant.evaluates is not None:
        log(f"{variant.label}, seed {seed}: evaluating ({variant.evaluates})'s model ...")
        source_dir = out / "runs" / VARIANTS[variant.evaluates].folder / f"seed-{seed}"
        result = _evaluate_again(variant, done[variant.evaluates, seed], source_dir, setup, seed)
    else:
        log(f"{variant.label}, seed {seed}: training {budget} iterations ...")
        result = _train_and_evaluate(variant, config, run_dir, budget, seed, setup, progress)
    data = result.to_dict()
    data["run_settings"] = wanted
    write_text_atomic(saved, json.dumps(data) + "\n")
    log(f"{variant.label}, seed {seed}: L1 {format_value(result.metrics.get('L1'))}, cross L1 moving "
        f"{format_value(result.metrics.get('cross_L1_moving'))}, keypoint error "
        f"{format_value(result.metrics.get('keypoint_error'))}")
    return result


def _parameter_counts(setup: ExperimentSetup, variants: Sequence[str]) -> dict[str, dict[str, int]]:
    """Parameters of each trained variant's networks, by the names of its checkpoint (FOMM's
    keypoint detector and generator: the graph's control is matched on these), without the
    training-only ones (a discriminator)."""
    counts = {}
    for key in variants:
        variant = VARIANTS[key]
        if variant.evaluates is None:
            model = build_model(variant_config(setup.base_for(variant), variant, budget=1, seed=0), device="cpu")
            counts[key] = {name: sum(p.numel() for p in getattr(model, name).parameters())
                           for name in model.inference_modules()}
    return counts


# --------------------------------------------------------------------------------------------
# the experiment


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
    variants: Sequence[str] = ("a", "b", "c", "d", "e", "h", "i", "j"),
    landmarks: Optional[str | Path] = None,
    landmark_epochs: int = 10,
    eval_videos: Optional[int] = None,
    max_train_videos: int = 16,
    batch_size: Optional[int] = None,
    mixed_precision: Optional[str] = None,
    split: str = "test",
    data_seed: Optional[int] = None,
    threads: Optional[int] = 1,
    progress: bool = False,
    log: Callable[[str], object] = logger.info,
) -> VariantsResult:
    """Train and evaluate ``variants`` (keys of :data:`VARIANTS`) for ``budget`` iterations each,
    once per training seed ``seed, seed + 1, ..., seed + seeds - 1``.

    ``dataset``: a kind of :mod:`fomm.data.synthetic` (generated into ``out/dataset`` from
    ``videos``, ``frames``, ``size`` and ``data_seed``, default ``seed``, with as many cross pairs
    as test videos, or reused when it matches) or a dataset folder. A separate ``data_seed`` lets
    two processes share one dataset and folder while training disjoint seeds (``seed=0,
    seeds=4`` and ``seed=4, seeds=4, data_seed=0``); a last call over all seeds then only reads
    their runs and writes the whole table. ``split``: ``test`` (report) or ``validation``
    (choose; see the module docstring). ``landmarks``: a detector from ``fomm train-landmarks``; by
    default one is trained for ``landmark_epochs`` on a sprites dataset (``out/landmarks.pt``,
    reused when present). ``eval_videos`` limits the evaluated videos and cross pairs,
    ``max_train_videos`` the train videos of the keypoint regression. ``batch_size`` and
    ``mixed_precision`` (``train_params.mixed_precision``: no, auto, bf16, fp16) override the
    config's, for every variant alike. Runs go seed by seed (every variant with the first seed,
    then with the second, ...), so an interrupted experiment has comparable runs. Writes the
    outputs listed in the package docstring and returns the results.
    """
    if budget < 1:
        raise UserError(f"budget must be at least 1 iteration, got {budget}")
    if seeds < 1:
        raise UserError(f"the number of seeds must be at least 1, got {seeds}")
    check_variants(variants)
    # Each variant once; one that evaluates another's models after it.
    variants = sorted(dict.fromkeys(variants), key=lambda key: VARIANTS[key].evaluates is not None)
    if threads:
        set_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data_seed = seed if data_seed is None else data_seed
    setup = prepare_experiment(dataset, out, videos=videos, frames=frames, size=size, seed=data_seed,
                               landmarks=landmarks, landmark_epochs=landmark_epochs, eval_videos=eval_videos,
                               max_train_videos=max_train_videos, batch_size=batch_size,
                               mixed_precision=mixed_precision, split=split, log=log)

    training_seeds = [seed + i for i in range(seeds)]
    results: dict[tuple[str, int], VariantResult] = {}
    for run_seed in training_seeds:
        for key in variants:
            results[key, run_seed] = _run_once(VARIANTS[key], setup, out, budget, run_seed, progress, log, results)

    base = setup.base_for(VARIANTS["c"])
    assert base.train_params is not None
    settings = {"videos": videos if setup.kind in KINDS and dataset in KINDS else None, "frames": frames,
                "size": setup.size, "batch_size": base.train_params.batch_size,
                "mixed_precision": base.train_params.mixed_precision,
                "threads": torch.get_num_threads(), "torch": torch.__version__,
                "flow_consistency_weight": FLOW_CONSISTENCY_WEIGHT, "nearby_pair_ratio": NEARBY_PAIR_RATIO,
                "data_seed": data_seed, "landmarks": setup.landmark_info, **setup.eval_settings,
                "parameters": _parameter_counts(setup, variants), "no_motion_columns": NO_MOTION,
                "total_seconds": time.perf_counter() - started}
    ordered = [results[key, s] for key in variants for s in training_seeds]
    result = VariantsResult(str(setup.root), setup.kind, budget, training_seeds, ordered, settings, split=split,
                            data_seed=data_seed)
    _write_outputs(result, out)
    return result


# --------------------------------------------------------------------------------------------
# outputs


def _write_outputs(result: VariantsResult, out: Path) -> None:
    seeds = ", ".join(str(s) for s in result.seeds)
    spread = "mean ± std over seeds" if len(result.seeds) > 1 else "one seed"
    title = (f"Variants experiment: {result.kind or result.dataset}, {result.budget} iterations per variant, "
             f"training seeds {seeds} ({spread}; data seed {result.data_seed}), {result.split} split\n\n")
    write_text_atomic(out / "table.md", title + result.markdown() + "\n")
    write_text_atomic(out / "table.csv", result.csv())
    write_text_atomic(out / "runs.csv", result.runs_csv())
    write_text_atomic(out / "results.json", json.dumps(result.to_dict(), indent=1) + "\n")
    plot_loss_curves(result, out / "loss_curves.png")
    plot_metrics(result, out / "metrics.png")
