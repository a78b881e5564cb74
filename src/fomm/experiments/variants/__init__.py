"""The variants experiment: the model variants trained and compared on equal terms
(``fomm experiment variants --dataset sprites --budget ITERS --seeds N``; ``fomm benchmark quality`` is
its old spelling). An experiment, not library core: it trains models. Its modules: the variants and
comparisons (:mod:`.definitions`), the run (:mod:`.run`), the results and tables (:mod:`.report`),
the figures (:mod:`.plots`); the results are in docs/research-variants.md.

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
                           mix 0.3; :class:`~fomm.models.graph.SeedKeypointGraph`)
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
trained again, so an interrupted experiment continues where it stopped and more seeds can be added
later. Progress goes to :mod:`logging` or to the ``log`` callback of :func:`run_variants_experiment`.
"""

from .definitions import CLAIMS, COLUMNS, KINDS, TITLES, VARIANTS, Claim, Variant, check_variants, variant_config
from .plots import plot_loss_curves, plot_metrics
from .report import CONFIDENCE, ClaimResult, VariantResult, VariantsResult, format_summary, format_value
from .run import ExperimentSetup, evaluate_variant, prepare_experiment, run_settings_key, run_variants_experiment

__all__ = [
    "CLAIMS",
    "COLUMNS",
    "CONFIDENCE",
    "KINDS",
    "TITLES",
    "VARIANTS",
    "Claim",
    "ClaimResult",
    "ExperimentSetup",
    "Variant",
    "VariantResult",
    "VariantsResult",
    "check_variants",
    "evaluate_variant",
    "format_summary",
    "format_value",
    "plot_loss_curves",
    "plot_metrics",
    "prepare_experiment",
    "run_settings_key",
    "run_variants_experiment",
    "variant_config",
]
