"""What the variants experiment compares: the variants (each a change to the dataset's base
config), the metric columns of its tables, and the comparisons the variants exist for.

See :mod:`fomm.experiments.variants` for the experiment itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from ...config import FommConfig, GraphParams
from ...errors import ConfigError, UserError

__all__ = ["CLAIMS", "COLUMNS", "CONFIGS", "KINDS", "TITLES", "VARIANTS", "Claim", "Variant", "check_variants",
           "variant_config"]

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
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



def check_variants(variants: Sequence[str]) -> None:
    """Raise UserError unless ``variants`` is a non-empty list of keys of :data:`VARIANTS`."""
    unknown = [key for key in variants if key not in VARIANTS]
    if unknown or not variants:
        raise UserError(f"unknown variant(s) {', '.join(unknown) or '(none given)'}; choose from "
                        + ", ".join(f"{v.key} ({v.name})" for v in VARIANTS.values()))

