"""The variants experiment: model variants trained and compared on equal terms
(``fomm experiment variants --dataset sprites --budget ITERS --seeds N``; ``fomm benchmark quality``
is its old spelling). An experiment, not library core: it trains models. Its modules: the variants
and the comparisons fixed before the runs (:mod:`.definitions`), the run (:mod:`.run`), the results
and tables (:mod:`.report`), the figures (:mod:`.plots`). The results are in
docs/research-variants.md.

Every variant trains with the same training seeds, on the same data, for exactly the same number of
iterations, then is evaluated on one split (``test`` to report, ``validation`` to choose; every
table names it): self-reconstruction (:func:`fomm.evaluation.evaluate_dataset`) and the task itself,
cross-identity animation against ground truth (:func:`fomm.evaluation.evaluate_cross_identity`).

===  =====================  ==================================================================
key  name                   change to the dataset's base config (``configs/<kind>-64.yaml``)
===  =====================  ==================================================================
a    zeroth-order           ``estimate_jacobian: False``, ``equivariance_jacobian: 0`` (Monkey-Net)
b    no-occlusion           ``estimate_occlusion_map: False``
c    fomm                   none (full FOMM)
d    fomm+graph             ``graph_params`` with its defaults (``style: improved``)
e    fomm+flow              ``flow_consistency: 10`` and ``nearby_pair_ratio: 0.5``
f    fomm+graph+flow        (d) and (e)
g    fomm+graph(seed)       ``graph_params: {style: seed}`` (the seed proposal's graph)
h    fomm+wider-detector    control of (d): the graph's parameters spent in the keypoint detector
                            (``max_features: 136``: +18,456 parameters against the graph's +18,922)
i    fomm+nearby-pairs      control of (e): ``nearby_pair_ratio: 0.5`` without the flow loss
j    fomm+temporal-filter   baseline of stability claims: (c)'s models, keypoint tracks through a
                            (1, 2, 1)/4 filter; trains nothing, keypoint metrics only
===  =====================  ==================================================================

A variant may also name another ``base`` config (a packaged config or a YAML path): another model
family's config joins the experiment as one more variant, on the same data, seeds and budget.

Seeds: ``seed, seed + 1, ..., seed + N - 1``. Only the training seed (initial weights, data order,
augmentation and equivariance draws) changes from one to the next; the datasets and the landmark
detector come from ``seed`` alone, so every run is evaluated on the same videos by the same
detector. Common to every run: a constant learning rate (no ``epoch_milestones``), no intermediate
checkpoints, decoded frames cached in memory.

Every table starts with the no-motion baseline (the source repeated). Comparisons: the
pre-registered family (:data:`PREREGISTERED`, six: each variant against its own control on the
metric its claim is about) gets the paired t interval, the t test and the exact sign-flip
permutation test, both Holm–Bonferroni adjusted over the family, and a verdict only when both
agree (:mod:`.report`); everything else is printed as exploratory, unadjusted, without verdicts.

Outputs in ``out``: ``table.md`` (the baseline and mean ± std over seeds, then both comparison
tables), ``table.csv``, ``runs.csv`` (one row per variant and seed), ``results.json`` (summary,
comparisons, every run with every step's losses), ``loss_curves.png``, ``metrics.png``, the
datasets (``dataset/``, and ``validation/`` for that split), the landmark detector
(``landmarks.pt``) and one folder per run (``runs/<key>-<name>/seed-<s>/``: checkpoint, logs,
``result.json``). A run whose ``result.json`` matches its settings is not run again, so an
interrupted experiment continues where it stopped and more seeds can be added later. Progress goes
to :mod:`logging` or to the ``log`` callback of :func:`run_variants_experiment`.
"""

from .definitions import (
    COLUMNS,
    DEFAULT_VARIANTS,
    KINDS,
    PREREGISTERED,
    TITLES,
    VARIANTS,
    Comparison,
    Variant,
    check_variants,
    exploratory_comparisons,
    variant_config,
)
from .plots import plot_loss_curves, plot_metrics
from .report import ALPHA, CONFIDENCE, ComparisonResult, VariantResult, VariantsResult, format_summary, format_value
from .run import (
    SPLITS,
    VALIDATION_SEED_OFFSET,
    ExperimentSetup,
    evaluate_variant,
    prepare_experiment,
    run_settings_key,
    run_variants_experiment,
)

__all__ = [
    "ALPHA",
    "COLUMNS",
    "CONFIDENCE",
    "DEFAULT_VARIANTS",
    "KINDS",
    "PREREGISTERED",
    "SPLITS",
    "TITLES",
    "VALIDATION_SEED_OFFSET",
    "VARIANTS",
    "Comparison",
    "ComparisonResult",
    "ExperimentSetup",
    "Variant",
    "VariantResult",
    "VariantsResult",
    "check_variants",
    "evaluate_variant",
    "exploratory_comparisons",
    "format_summary",
    "format_value",
    "plot_loss_curves",
    "plot_metrics",
    "prepare_experiment",
    "run_settings_key",
    "run_variants_experiment",
    "variant_config",
]
