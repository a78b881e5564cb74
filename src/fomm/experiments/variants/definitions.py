"""What the variants experiment compares, stated before it runs: the variants (each a change to a
base config), the metric columns of its tables, and the comparisons it was designed to test.

:data:`PREREGISTERED` is the one list of confirmatory comparisons: their p-values are adjusted
together (Holm–Bonferroni) and only they get verdicts. Every other difference the experiment
prints is exploratory (:func:`exploratory_comparisons`) and says so.

A variant is a base config and an edit of it: the dataset's FOMM config (``configs/<kind>-64.yaml``)
unless ``base`` names another (a packaged config name or a YAML path), so another model family's
config becomes one more variant with the same data, seeds and budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ...config import FommConfig, GraphParams
from ...errors import ConfigError, UserError

__all__ = ["COLUMNS", "CONFIGS", "KINDS", "PREREGISTERED", "TITLES", "VARIANTS", "Comparison", "Variant",
           "check_variants", "exploratory_comparisons", "variant_config"]

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
KINDS = ("sprites", "warped-photos")
#: Settings of the flow-consistency variants (e, f) and of their control (i).
FLOW_CONSISTENCY_WEIGHT = 10.0
NEARBY_PAIR_RATIO = 0.5
#: The parameter-matched control of the graph (h): the keypoint detector's hourglass capped at 136
#: channels instead of 128 adds 18,456 parameters to the 64x64 detector, where the graph refiner
#: adds 18,922 (both counted by the experiment and written to its settings).
CONTROL_MAX_FEATURES = 136


def _no_change(config: Any) -> None:
    """The base config as it is."""


def _zeroth_order(config: FommConfig) -> None:
    config.model_params.common_params.estimate_jacobian = False
    config.train_params.loss_weights.equivariance_jacobian = 0.0


def _no_occlusion(config: FommConfig) -> None:
    config.model_params.generator_params.estimate_occlusion_map = False


def _graph(config: FommConfig) -> None:
    config.model_params.graph_params = GraphParams()


def _seed_graph(config: FommConfig) -> None:
    config.model_params.graph_params = GraphParams(style="seed")


def _wider_detector(config: FommConfig) -> None:
    config.model_params.kp_detector_params.max_features = CONTROL_MAX_FEATURES


def _nearby_pairs(config: FommConfig) -> None:
    config.dataset_params.nearby_pair_ratio = NEARBY_PAIR_RATIO


def _flow(config: FommConfig) -> None:
    _nearby_pairs(config)
    config.train_params.loss_weights.flow_consistency = FLOW_CONSISTENCY_WEIGHT


def _graph_and_flow(config: FommConfig) -> None:
    _graph(config)
    _flow(config)


@dataclass(frozen=True)
class Variant:
    """One row of the experiment.

    ``edit`` changes a copy of the base config (the dataset's FOMM config, or ``base``: a packaged
    config name or YAML path, e.g. another family's). A variant with ``evaluates`` trains nothing:
    it evaluates the runs of that variant again, with ``keypoint_filter`` on their keypoint tracks
    (a baseline made from another variant's models).
    """

    key: str
    name: str
    description: str
    edit: Callable[[Any], None] = _no_change
    base: Optional[str] = None
    evaluates: Optional[str] = None
    keypoint_filter: bool = False

    @property
    def label(self) -> str:
        return f"({self.key}) {self.name}"

    @property
    def folder(self) -> str:
        """The run folder's name: key and name, anything but letters and digits as ``-``."""
        return re.sub(r"[^A-Za-z0-9]+", "-", f"{self.key}-{self.name}").strip("-")


VARIANTS: dict[str, Variant] = {v.key: v for v in (
    Variant("a", "zeroth-order", "no jacobians: keypoint displacements only (Monkey-Net)", _zeroth_order),
    Variant("b", "no-occlusion", "no occlusion map", _no_occlusion),
    Variant("c", "fomm", "full FOMM (base config)"),
    Variant("d", "fomm+graph", "FOMM + keypoint graph refiner (defaults: 2 heads, 64 hidden, mix 0.5)", _graph),
    Variant("e", "fomm+flow", f"FOMM + flow consistency (weight {FLOW_CONSISTENCY_WEIGHT:g}) on nearby pairs "
            f"(ratio {NEARBY_PAIR_RATIO:g})", _flow),
    Variant("f", "fomm+graph+flow", "FOMM + graph + flow consistency", _graph_and_flow),
    Variant("g", "fomm+graph(seed)", "FOMM + the seed proposal's keypoint graph (one head on coordinates, "
            "sigmoid soft-mask adjacency, values only, mix 0.3)", _seed_graph),
    Variant("h", "fomm+wider-detector", f"control of (d): the detector's hourglass capped at "
            f"{CONTROL_MAX_FEATURES} channels, the graph's parameters spent in the detector", _wider_detector),
    Variant("i", "fomm+nearby-pairs", f"control of (e): its nearby pairs (ratio {NEARBY_PAIR_RATIO:g}) without "
            "the flow-consistency loss", _nearby_pairs),
    Variant("j", "fomm+temporal-filter", "baseline of stability claims: (c)'s models with their keypoint tracks "
            "through a 3-tap binomial filter (1, 2, 1)/4; keypoint metrics only", evaluates="c",
            keypoint_filter=True),
    Variant("k", "tpsmm", "Thin-Plate Spline Motion Model (its sprites config: 10 TPS transforms, background, "
            "transform dropout)", base="tpsmm-sprites-64"),
    Variant("l", "mraa", "articulated regions, MRAA (its sprites config: 10 regions, affine background)",
            base="mraa-sprites-64"),
)}
#: What `fomm experiment variants` runs unless told otherwise: what the pre-registered
#: comparisons need.
DEFAULT_VARIANTS: tuple[str, ...] = ("a", "b", "c", "d", "e", "h", "i", "j")

#: Table columns: (key in VariantResult.metrics, header). All are lower-is-better. ``cross_*`` are
#: the cross-identity figures (fomm.evaluation.cross_identity); the others self-reconstruction.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("L1", "L1"),
    ("cross_L1", "cross L1"),
    ("cross_L1_moving", "cross L1 moving"),
    ("cross_L1_moving_oracle", "oracle L1 moving"),
    ("cross_pose_error", "cross pose (px)"),
    ("cross_appearance", "cross appearance"),
    ("AKD", "AKD (px)"),
    ("MKR", "MKR"),
    ("keypoint_error", "kp error (% w)"),
    ("jitter", "jitter (% w)"),
    ("kp_acceleration", "kp accel (% w)"),
    ("flow_epe", "flow EPE (px)"),
    ("seconds_per_iter", "s / iter"),
)
TITLES = dict(COLUMNS)
#: The no-motion baseline's figures, taken from the evaluations (the source repeated): metric of
#: the table -> where the evaluation keeps the baseline's value.
NO_MOTION: dict[str, str] = {"L1": "L1_first_frame", "cross_L1": "cross_L1_repeat_source",
                             "cross_L1_moving": "cross_L1_moving_repeat_source",
                             "cross_appearance": "cross_appearance_repeat_source"}


@dataclass(frozen=True)
class Comparison:
    """``variant`` minus ``reference`` on ``metric``, paired over seeds; ``hypothesis`` says what
    the comparison tests and why it was chosen."""

    title: str
    variant: str
    reference: str
    metric: str
    hypothesis: str = ""
    preregistered: bool = field(default=False, compare=False)


#: The confirmatory comparisons, fixed before the runs: one family, Holm–Bonferroni adjusted. Each
#: variant is compared with its own control, on the metric its claim is about; the task metric
#: (cross-identity L1 on moving pixels) for the paper's two components. Six comparisons: with
#: n seeds the permutation test's smallest p-value is 2 / 2^n, so a verdict after Holm needs
#: 6 * 2 / 2^n < 0.05, i.e. at least 8 seeds.
PREREGISTERED: tuple[Comparison, ...] = tuple(
    Comparison(*fields, preregistered=True) for fields in (
        ("graph vs its parameter-matched control", "d", "h", "keypoint_error",
         "the graph refiner, not its extra parameters, lowers keypoint error"),
        ("graph vs its parameter-matched control", "d", "h", "jitter",
         "the graph refiner steadies the keypoints"),
        ("flow consistency vs its nearby-pairs control", "e", "i", "jitter",
         "the flow-consistency loss, not its nearby pairs, steadies the keypoints"),
        ("flow consistency vs its nearby-pairs control", "e", "i", "keypoint_error",
         "the flow-consistency loss costs keypoint accuracy (as the 5-seed run suggested)"),
        ("zeroth-order vs first-order", "a", "c", "cross_L1_moving",
         "local affine motion (jacobians) animates another figure better than displacements alone"),
        ("no occlusion vs occlusion", "b", "c", "cross_L1_moving",
         "the occlusion map animates another figure better"),
    ))


def exploratory_comparisons(keys: Sequence[str]) -> list[Comparison]:
    """Every other difference worth printing among the variants ``keys`` that ran: each variant
    against full FOMM (c) on every metric, and the pairs the earlier write-ups discussed (the two
    graphs, flow consistency against the graph, the graphs and flow against the temporal filter on
    stability). None is pre-registered; none gets a verdict."""
    present = set(keys)
    wanted: list[tuple[str, str, str]] = []
    for key in keys:
        if key != "c":
            wanted += [(key, "c", metric) for metric, _ in COLUMNS if metric != "seconds_per_iter"]
    for variant, reference in (("d", "g"), ("e", "d")):
        wanted += [(variant, reference, metric) for metric in ("keypoint_error", "jitter", "kp_acceleration")]
    for variant in ("d", "e", "g"):
        wanted += [(variant, "j", metric) for metric in ("jitter", "kp_acceleration")]
    registered = {(c.variant, c.reference, c.metric) for c in PREREGISTERED}
    seen: set[tuple[str, str, str]] = set()
    comparisons = []
    for triple in wanted:
        variant, reference, metric = triple
        if variant in present and reference in present and triple not in registered and triple not in seen:
            seen.add(triple)
            comparisons.append(Comparison(f"{VARIANTS[variant].name} vs {VARIANTS[reference].name}",
                                          variant, reference, metric))
    return comparisons


def variant_config(base: Any, variant: Variant, *, budget: int, seed: int) -> Any:
    """``base`` (a config of any family) edited for ``variant`` and for a fixed-budget run with training seed ``seed``:
    a constant learning rate (the base schedules are stated in epochs of a full run, not of a
    budget), enough epochs for the budget, a checkpoint only at the end, frames cached in memory."""
    config = base.model_copy(deep=True)
    train = config.train_params
    if train is None or config.dataset_params is None:
        raise ConfigError("the base config needs dataset_params and train_params")
    if variant.base is None:
        # The dataset's FOMM config, with the options that variants switch on switched off first.
        config.model_params.graph_params = None
        train.loss_weights.flow_consistency = 0.0
        config.dataset_params.nearby_pair_ratio = 0.0
    variant.edit(config)
    train.seed = seed
    train.epoch_milestones = []
    # The budget, not the epoch count, ends training (max_steps writes the one checkpoint).
    train.num_epochs = max(1, budget) + 1
    train.checkpoint_freq = train.num_epochs + 1
    config.dataset_params.cache_frames = True
    return config


def check_variants(variants: Sequence[str]) -> None:
    """Raise UserError unless ``variants`` is a non-empty list of keys of :data:`VARIANTS` in which
    every variant that evaluates another's runs comes with that variant."""
    unknown = [key for key in variants if key not in VARIANTS]
    if unknown or not variants:
        raise UserError(f"unknown variant(s) {', '.join(unknown) or '(none given)'}; choose from "
                        + ", ".join(f"{v.key} ({v.name})" for v in VARIANTS.values()))
    for key in variants:
        needed = VARIANTS[key].evaluates
        if needed is not None and needed not in variants:
            raise UserError(f"variant {key} ({VARIANTS[key].name}) evaluates the runs of {needed}: "
                            f"add {needed} to the variants")
