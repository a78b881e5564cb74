"""What the animation pipeline sees of a model family: one small interface.

Three families live in this package: FOMM (keypoints with local affine jacobians), TPSMM (thin-plate
spline transforms from groups of five keypoints) and MRAA (regions whose mean and covariance give a
shift and an affine map). They differ in what describes motion and how an image is rendered from
it, but an animation is the same four steps for all of them:

1. ``encode_source(source)``: the source image's state, computed once (its encoder features);
2. ``describe(frames)``: the motion description of images (keypoints, TPS points, regions), for the
   source and for every driving frame;
3. ``transfer(source, driving, initial, settings)``: the driving description turned into the one to
   render: absolute (as it is), relative to an initial driving frame, or through the family's AVD
   network (animation via disentanglement);
4. ``render(state, source_description, driving_description)``: the frame, with what produced it.

The :class:`~fomm.animate.Animator`, streaming, the backends (fused torch, ONNX, OpenVINO) and the
exporter use only these methods, the :class:`~fomm.bundle.TensorBundle` results, and the class
attributes below. Nothing outside :mod:`fomm.models.registry` asks which family a model is.

Images are ``(B, C, H, W)`` float in [0, 1]; coordinates are (x, y) in [-1, 1] (see
:mod:`fomm.geometry`, whose convention every family states against).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal, Optional, Sequence

import torch
from torch import Tensor, nn

from ..bundle import TensorBundle
from ..errors import ConfigError
from ..geometry import resize_grid

__all__ = ["MOTION_MODES", "MotionModel", "MotionSettings", "OptimizerPlan", "PairObjective", "Rendered", "Schedule",
           "TrainingPlan", "TrainingStage", "avd_training_plan"]

#: How driving motion is applied to the source: relative to an initial driving frame, as it is,
#: through the family's AVD network (TPSMM, MRAA), or relative and corrected by a learned point
#: transfer (FOMM; :mod:`fomm.models.fomm.point_transfer`). A model offers the first two always,
#: the others when it has the network (:meth:`MotionModel.motion_modes`).
MOTION_MODES = ("relative", "absolute", "avd", "learned")
MotionMode = Literal["relative", "absolute", "avd", "learned"]
#: What a model lacks when it does not offer a mode, for the error that says so.
_MISSING_NETWORK = {
    "avd": "no AVD network (TPSMM and MRAA models trained with `fomm train-avd` have one)",
    "learned": "no learned point transfer (FOMM models with a point_transfer network have one: "
               "`scripts/learned_transfer.py` trains one)",
}


@dataclass(frozen=True)
class MotionSettings:
    """How driving motion is transferred.

    ``mode``: one of :data:`MOTION_MODES`. ``adapt_scale``: in relative mode, scale the motion by
    sqrt(source hull area / initial driving hull area) (the original ``adapt_movement_scale``).
    ``relative_jacobian``: FOMM's ``use_relative_jacobian`` (other families ignore it).
    ``learned`` is relative motion too (a correction of it): it takes a reference frame and
    ``adapt_scale`` as ``relative`` does.
    """

    mode: MotionMode = "relative"
    adapt_scale: bool = False
    relative_jacobian: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MOTION_MODES:
            raise ValueError(f"unknown motion mode {self.mode!r} (use one of {', '.join(MOTION_MODES)})")

    @property
    def relative(self) -> bool:
        """Whether the motion is taken relative to an initial driving frame."""
        return self.mode in ("relative", "learned")


@dataclass
class Rendered(TensorBundle):
    """A rendered batch: ``prediction`` ``(B, C, H, W)`` in [0, 1], and, when the renderer has
    them, the source warped by the dense motion at full resolution (``deformed``), the occlusion
    map it used (``occlusion_map`` ``(B, 1, h, w)``) and the dense motion itself (``deformation``
    ``(B, h, w, 2)``: for each output pixel, where to sample the source, (x, y) in [-1, 1]).
    Families return subclasses with more fields (masks, every occlusion level)."""

    prediction: Tensor
    deformed: Optional[Tensor] = None
    occlusion_map: Optional[Tensor] = None
    deformation: Optional[Tensor] = None


@dataclass(frozen=True)
class Schedule:
    """How long and in what batches a training stage runs, from the family's config section
    (``train_params``, ``train_avd_params``): epochs of ``num_repeats`` passes over the videos,
    learning rates divided by 10 at each of ``epoch_milestones``, a checkpoint every
    ``checkpoint_freq`` epochs. ``grad_clip``, ``seed``: see :class:`fomm.config.TrainParams`
    (the arithmetic, ``train_params.mixed_precision``, is the trainer's choice)."""

    num_epochs: int
    batch_size: int
    num_repeats: int = 1
    epoch_milestones: tuple[int, ...] = ()
    checkpoint_freq: int = 1
    num_workers: int = 0
    seed: int = 0
    grad_clip: Optional[float] = None


@dataclass(frozen=True)
class OptimizerPlan:
    """One Adam optimiser (betas 0.5, 0.999 in every family): the networks it updates, its
    learning rate and weight decay, the epoch from which it steps (TPSMM's background predictor
    waits for ``bg_start``), and the networks whose gradient is clipped, each on its own, to a
    largest entry of ``clip_max_entry`` before the step (TPSMM's ``clip_grad_norm_(..., inf)``).
    ``key`` names its state in checkpoints, as the family's original code did
    (``optimizer_generator``, ``optimizer``, ``optimizer_reconstruction``, ``optimizer_avd``)."""

    key: str
    networks: tuple[str, ...]
    lr: float
    weight_decay: float = 0.0
    start_epoch: int = 0
    clipped: tuple[str, ...] = ()
    clip_max_entry: float = 10.0


@dataclass
class TrainingStage:
    """One backward pass and optimiser step of an iteration. ``objective(batch, epoch, earlier)``
    returns ``(losses, generated)``: weighted scalar losses (summed for the backward pass) and
    tensors for the next stage and the pictures (``prediction``, ``kp_source``/``kp_driving``
    points ``(B, N, 2)``, ``deformed``, ``occlusion_map``); ``earlier`` is what the stages before it
    generated in this iteration. The objective holds the networks it trains as submodules (it is
    the unit DistributedDataParallel wraps)."""

    name: str
    objective: nn.Module
    optimizers: tuple[str, ...]


@dataclass
class TrainingPlan:
    """Everything the trainer needs to train one stage of a family: the schedule, the optimisers,
    the stages of an iteration, the networks that train (the others are frozen in eval mode) and
    the dataset section to read (None: the config's ``dataset_params``)."""

    schedule: Schedule
    optimizers: tuple[OptimizerPlan, ...]
    stages: tuple[TrainingStage, ...]
    trains: tuple[str, ...]
    dataset_params: Any = None


def avd_training_plan(model: "MotionModel", objective: Callable[[Any], nn.Module]) -> TrainingPlan:
    """The AVD stage of the families that have one (TPSMM's and MRAA's ``train_avd.py``): the AVD
    network alone, one Adam (``optimizer_avd``) at ``train_avd_params.lr`` on that section's
    schedule, seeded by ``train_params.seed``. ``objective(train_avd_params)`` is the family's
    AVD loss as a module of ``(source, driving)``."""
    config = model.config
    params = config.train_avd_params
    if params is None:
        raise ConfigError("the config has no train_avd_params section: nothing says how to train the AVD network")
    if getattr(model, "avd_network", None) is None:
        raise ConfigError("the AVD stage needs an AVD network: model_params.avd_network_params in the config")
    schedule = Schedule(num_epochs=params.num_epochs, batch_size=params.batch_size, num_repeats=params.num_repeats,
                        epoch_milestones=tuple(params.epoch_milestones), checkpoint_freq=params.checkpoint_freq,
                        num_workers=params.dataloader_workers,
                        seed=config.train_params.seed if config.train_params is not None else 0)
    return TrainingPlan(schedule=schedule, optimizers=(OptimizerPlan("optimizer_avd", ("avd_network",), params.lr),),
                        stages=(TrainingStage("avd", PairObjective(objective(params), with_epoch=False),
                                              ("optimizer_avd",)),),
                        trains=("avd_network",))


class PairObjective(nn.Module):
    """A family's objective of ``(source, driving[, epoch])`` as a :class:`TrainingStage`'s
    objective of ``(batch, epoch, earlier)``; ``points`` renames the keys of its generated points
    to the pictures' ``kp_source`` / ``kp_driving``."""

    def __init__(self, objective: nn.Module, with_epoch: bool = True, points: Optional[dict[str, str]] = None) -> None:
        super().__init__()
        self.objective = objective
        self.with_epoch = with_epoch
        self.points = points or {}

    def forward(self, batch: dict[str, Tensor], epoch: int = 0, earlier: Optional[dict[str, Tensor]] = None
                ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        if "target" in batch:
            raise ConfigError("dataset_params.cross_pair_ratio > 0 (training on cross pairs) is implemented for "
                              "FOMM models only: set it to 0 for this family")
        arguments = (batch["source"], batch["driving"], epoch) if self.with_epoch else (batch["source"], batch["driving"])
        losses, generated = self.objective(*arguments)
        for theirs, ours in self.points.items():
            if theirs in generated:
                generated[ours] = generated[theirs]
        return losses, generated


class MotionModel(nn.Module):
    """Base of every family's model (see the module docstring).

    Subclasses set the class attributes and implement the abstract methods. ``config`` is the
    family's typed config; ``epoch`` the finished training epochs of the checkpoint it came from.
    """

    #: The family's name in :mod:`fomm.models.registry` (``fomm``, ``tpsmm``, ``mraa``).
    family: ClassVar[str] = ""
    #: The networks, by their names in a checkpoint (each an attribute of the model).
    networks: ClassVar[tuple[str, ...]] = ()
    #: Networks used only in training (a discriminator): inference engines leave them out.
    training_only: ClassVar[tuple[str, ...]] = ()
    #: Networks a checkpoint may come without (a background predictor, an AVD network): a model
    #: loading such a checkpoint goes without them rather than keep random weights.
    optional_networks: ClassVar[tuple[str, ...]] = ()
    #: The training stages of the family (``fomm train`` runs the first; ``fomm train-avd`` the AVD
    #: one); how each trains is the family's plan (:attr:`fomm.models.registry.Family.training_plan`).
    training_stages: ClassVar[tuple[str, ...]] = ("motion",)
    #: Pictures colour :meth:`points` in groups of this many (a TPS transform's five points).
    point_group_size: ClassVar[int] = 1
    #: The classes of :meth:`describe`'s and :meth:`encode_source`'s results.
    motion_type: ClassVar[type[TensorBundle]]
    state_type: ClassVar[type[TensorBundle]]

    config: Any
    epoch: int = 0

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` the model was configured for (256x256 when the config gives none, as the
        published TPSMM and MRAA configs do not)."""
        dataset = getattr(self.config, "dataset_params", None)
        if dataset is None or dataset.frame_shape is None:
            return (256, 256, self.num_channels)
        return tuple(dataset.frame_shape)

    @property
    @abstractmethod
    def num_channels(self) -> int:
        """Channels of the images the model takes and makes."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def has_avd(self) -> bool:
        """Whether ``transfer`` offers the ``avd`` mode (the family has an AVD network)."""
        return False

    def motion_modes(self) -> tuple[str, ...]:
        """The modes of :data:`MOTION_MODES` this model's :meth:`transfer` offers."""
        return ("relative", "absolute") + (("avd",) if self.has_avd else ())

    def check_motion_mode(self, mode: str) -> None:
        """Raise :class:`~fomm.errors.ConfigError` naming what is missing when this model does
        not offer ``mode``."""
        if mode in self.motion_modes():
            return
        if mode in _MISSING_NETWORK:
            raise ConfigError(f"motion '{mode}': this {type(self).__name__} has {_MISSING_NETWORK[mode]}; "
                              f"use one of {', '.join(self.motion_modes())}")
        raise ConfigError(f"unknown motion {mode!r} (use one of {', '.join(self.motion_modes())})")

    def default_motion(self) -> MotionSettings:
        """How ``fomm animate`` transfers motion for this model unless told otherwise (from its
        config, as the family's original demo does)."""
        return MotionSettings()

    @abstractmethod
    def describe(self, images: Tensor) -> TensorBundle:
        """The motion description of ``(B, C, H, W)`` images (batch ``B``)."""

    @abstractmethod
    def encode_source(self, image: Tensor) -> TensorBundle:
        """What rendering needs of ``(B, C, H, W)`` source images, computed once per source."""

    @abstractmethod
    def transfer(self, source: TensorBundle, driving: TensorBundle, initial: TensorBundle,
                 settings: MotionSettings) -> TensorBundle:
        """The description to render for driving frames ``driving`` (batch ``B``), given the
        source's (batch 1 or ``B``) and the initial driving frame's (batch 1 or ``B``)."""

    @abstractmethod
    def render(self, state: TensorBundle, source: TensorBundle, driving: TensorBundle) -> Rendered:
        """Frames of the source (``state`` from :meth:`encode_source`, batch 1 or ``B``) moved from
        its description ``source`` to ``driving`` (batch ``B``)."""

    @abstractmethod
    def points(self, motion: TensorBundle) -> Tensor:
        """``(B, N, 2)`` positions of a description, (x, y) in [-1, 1]: what pictures draw and
        what poses are compared by (the best reference frame, the scale of relative motion)."""

    def regions(self, motion: TensorBundle) -> Optional[Tensor]:
        """``(B, N, 2, 2)`` covariances of :meth:`points`, drawn as ellipses, for families whose
        motion is made of regions; None otherwise."""
        return None

    def explain(self, images: Tensor, rendered: Rendered) -> dict[str, Tensor]:
        """Named groups of maps ``(B, M, h, w)`` that show how the model sees driving ``images``
        and how ``rendered`` was made (for pictures): per point, or per group of points with a
        background map first. None by default."""
        return {}

    def point_links(self) -> Optional[tuple[Tensor, float]]:
        """Learned links between points, ``(N, N)`` weights and the threshold above which
        pictures draw them (a keypoint graph), or None."""
        return None

    def resize_deformation(self, deformation: Tensor, height: int, width: int) -> Tensor:
        """:attr:`Rendered.deformation` ``(B, h, w, 2)`` brought to ``(B, height, width, 2)`` the
        way the family's renderer brings it to the image (the original's coordinate resize by
        default): a flow metric must compare what the renderer actually warps with."""
        return resize_grid(deformation, height, width)

    def size_multiple(self) -> int:
        """Image heights and widths the networks accept are multiples of this."""
        return 1

    def animate_frames(self, source: Tensor, driving: Tensor) -> Rendered:
        """Absolute-motion convenience: ``source`` ``(B, C, H, W)`` moved to ``driving``'s pose."""
        source_motion = self.describe(source)
        return self.render(self.encode_source(source), source_motion, self.describe(driving))

    def reconstruct(self, source: Tensor, driving: Tensor) -> Rendered:
        """Training and evaluation's forward: ``source`` ``(B, C, H, W)`` moved to the pose of
        ``driving`` (same batch) with absolute motion, using every network the family trains with
        (a background motion predictor too). Defaults to :meth:`animate_frames`."""
        return self.animate_frames(source, driving)

    # What the exported graphs (fomm.export) compute. A family whose description needs an
    # operation ONNX lacks (an SVD, a linear solve) computes that part in torch on the graph's
    # outputs, by overriding the pair below.

    def describe_for_export(self, images: Tensor) -> tuple[Tensor, ...]:
        """The tensors the exported ``describe`` graph returns for ``(B, C, H, W)`` images."""
        return self.describe(images).tensors()

    def description_from_export(self, outputs: Sequence[Tensor],
                                layout: tuple[tuple[str, Optional[int]], ...]) -> TensorBundle:
        """The description, from the ``describe`` graph's outputs (``layout``: that of
        :meth:`describe`'s result when the graph was exported)."""
        return self.motion_type.from_tensors(outputs, layout)

    def built_networks(self) -> tuple[str, ...]:
        """The networks this model has (of :attr:`networks`, those its config builds and its
        checkpoint did not go without)."""
        return tuple(name for name in self.networks if getattr(self, name, None) is not None)

    def remove_network(self, name: str) -> None:
        """Go without one of :attr:`optional_networks` (a checkpoint without its weights)."""
        if name not in self.optional_networks:
            raise ValueError(f"{name!r} is not an optional network of {type(self).__name__} "
                             f"({', '.join(self.optional_networks) or 'it has none'})")
        setattr(self, name, None)

    def inference_modules(self) -> list[str]:
        """The networks an inference engine needs (those built, but :attr:`training_only`)."""
        return [name for name in self.built_networks() if name not in self.training_only]
