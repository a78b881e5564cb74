"""Animating a source image with the motion of driving frames, for a model of any family.

``Animator`` works on tensors: images ``(3, H, W)`` or ``(T, 3, H, W)`` float in [0, 1] at the
model's frame size (:func:`fomm.data.frames.fit_frames` gets there from frames of any size). The
loop is the original ``demo.py``'s: describe the source and the reference driving frame once, then
for each batch of driving frames describe them, transfer their motion onto the source (relative,
absolute or AVD: :meth:`fomm.models.MotionModel.transfer`) and render. The source is encoded once.
Which runtime and arithmetic run the networks is an :class:`~fomm.backends.Engine` chosen by
``backend`` and ``precision`` (see :mod:`fomm.backends`); the motion transfer between the networks
is always fp32 torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional

import torch
from torch import Tensor

from .backends import BACKENDS, PRECISIONS, Engine, Measurement, PreparedSource, choose_engine
from .bundle import TensorBundle
from .errors import UserError
from .models import MOTION_MODES, MotionModel, MotionSettings, Rendered
from .pose import best_matching_frame

__all__ = ["BACKENDS", "MOTION_MODES", "PRECISIONS", "AnimatedBatch", "Animator", "MotionSettings",
           "PreparedSource"]

#: Driving frames the ``auto`` choice is measured on (with the source).
CALIBRATION_FRAMES = 2
#: Driving frames (of the first batch) that calibrate ``int8``, with the source.
INT8_CALIBRATION_FRAMES = 8


@dataclass
class AnimatedBatch:
    """One batch of animated frames with everything the outputs draw, so nothing is computed
    twice: the driving frames as the model saw them ``(B, 3, H, W)``, the prediction
    ``(B, 3, H, W)`` in [0, 1] (fp32, CPU), the descriptions of the source (batch 1), of the
    driving frames and the one rendered (after the transfer), and the renderer's output."""

    driving: Tensor
    prediction: Tensor
    source_motion: TensorBundle
    driving_motion: TensorBundle
    rendered_motion: TensorBundle
    output: Rendered


class Animator:
    """Moves a source image the way driving frames move.

    ``relative=True`` transfers the driving motion relative to a reference driving frame (the
    first, or the best matching) onto the source (the papers' relative transfer); ``False`` uses
    the driving motion as it is. ``motion="avd"`` uses the family's AVD network instead (TPSMM,
    MRAA), ``motion="learned"`` relative motion corrected by a FOMM model's point transfer, and
    ``motion`` overrides ``relative`` when given. ``adapt_scale`` scales relative motion
    by the ratio of the source's and the reference frame's hull sizes.

    ``precision`` (one of :data:`PRECISIONS`) and ``backend`` (one of :data:`BACKENDS`) say what
    runs the networks. ``fp32`` is exact (within 1e-4 of the plain networks); ``bf16``/``fp16``
    run the convolutions in reduced precision and keep keypoint statistics and sampling grids in
    fp32; ``int8`` (OpenVINO, NNCF) quantises the exported graphs once, calibrated on the source
    and the first driving frames, keeping those parts float; ``auto`` picks from the CPU flags
    and a sub-second probe, and keeps a reduced arithmetic only if its first frame stays within
    40 dB PSNR of fp32 (the choice is cached, see :func:`fomm.backends.choose_engine`). ``torch`` runs on the model's device;
    ``onnxruntime`` and ``openvino`` run exported graphs on the CPU (exported once per checkpoint
    into ``$FOMM_CACHE``). ``compile`` (torch backend) uses ``torch.compile``: a cold start of
    tens of seconds, opt-in. The defaults (fp32, torch) are exact and have no side effects;
    ``fomm animate`` uses ``auto`` for both. An ``engine`` given (see :mod:`fomm.backends`) is
    used as it is, whatever ``precision`` and ``backend`` say.

    >>> animator = Animator(model, relative=True, precision="auto", backend="auto")
    >>> frames = animator.animate(source, driving)       # (T, 3, H, W) in [0, 1]
    """

    def __init__(self, model: MotionModel, relative: bool = True, adapt_scale: bool = False,
                 relative_jacobian: bool = True, batch_size: int = 8, precision: str = "fp32",
                 backend: str = "torch", compile: bool = False, engine: Optional[Engine] = None,
                 motion: Optional[str] = None) -> None:
        if batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {batch_size}")
        if precision not in PRECISIONS:
            raise UserError(f"unknown precision {precision!r} (use one of {', '.join(PRECISIONS)})")
        if backend not in BACKENDS:
            raise UserError(f"unknown backend {backend!r} (use one of {', '.join(BACKENDS)})")
        mode = motion if motion is not None else ("relative" if relative else "absolute")
        model.check_motion_mode(mode)  # an unknown mode too, listing the ones this model offers
        self.model = model.eval()
        self.settings = MotionSettings(mode=mode, adapt_scale=adapt_scale, relative_jacobian=relative_jacobian)
        self.batch_size = batch_size
        self.precision = precision
        self.backend = backend
        self.compile = compile
        self._engine: Optional[Engine] = engine
        #: What the ``auto`` choice measured (empty until then, or when it was known already).
        self.measurements: list[Measurement] = []

    @classmethod
    def with_settings(cls, model: MotionModel, settings: MotionSettings, **options) -> "Animator":
        """An animator with the transfer of ``settings``; ``options`` as the constructor's."""
        return cls(model, adapt_scale=settings.adapt_scale, relative_jacobian=settings.relative_jacobian,
                   motion=settings.mode, **options)

    @property
    def relative(self) -> bool:
        return self.settings.relative

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def engine(self) -> Optional[Engine]:
        """The engine running the networks: None until the first frames arrive (``auto`` measures
        on them)."""
        return self._engine

    def _engine_for(self, source: Tensor, driving: Tensor) -> Engine:
        """The engine, chosen on first use with ``source`` (1, C, H, W) and ``driving`` frames."""
        if self._engine is None:
            sample = driving[:INT8_CALIBRATION_FRAMES if self.precision == "int8" else CALIBRATION_FRAMES]
            self._engine, self.measurements = choose_engine(self.model, self.backend, self.precision,
                                                            source[:1], sample, compile=self.compile)
        return self._engine

    def choose_engine(self, source: Tensor, driving: Tensor) -> Engine:
        """The engine, chosen once on ``source`` ((3, H, W) or (1, 3, H, W)) and the first
        ``driving`` frames ((T, 3, H, W)): ``auto`` checks its choice on them and ``int8``
        calibrates on them, so call this before :meth:`prepare_source` when the driving frames
        are known (``prepare_source`` alone chooses on the source as its own driving frame)."""
        return self._engine_for(source[None] if source.dim() == 3 else source, driving)

    @torch.inference_mode()
    def prepare_source(self, source: Tensor, sample: Optional[Tensor] = None) -> PreparedSource:
        """Description and encoding of a ``(3, H, W)`` or ``(1, 3, H, W)`` source. ``sample``:
        driving frames to choose the engine on, when it is not chosen yet (default: the source)."""
        image = source[None] if source.dim() == 3 else source
        return self._engine_for(image, image if sample is None else sample).prepare_source(image)

    @torch.inference_mode()
    def describe(self, frames: Tensor) -> TensorBundle:
        """The motion description of ``(T, 3, H, W)`` frames, in batches of ``batch_size``."""
        engine = self._engine_for(frames[:1], frames)
        parts = [engine.describe(batch) for batch in frames.split(self.batch_size)]
        return type(parts[0]).cat(parts)

    @torch.inference_mode()
    def step(self, source: PreparedSource, frames: Tensor, initial: TensorBundle) -> AnimatedBatch:
        """Animate one batch of driving ``frames`` ``(B, 3, H, W)``; ``initial``: the description
        of the reference driving frame (batch 1)."""
        engine = self._engine_for(source.image, frames)
        driving = engine.describe(frames)
        rendered_motion = self.model.transfer(source.motion, driving, initial.to(driving.tensors()[0].device),
                                              self.settings)
        output = engine.render(source, rendered_motion)
        return AnimatedBatch(driving=frames, prediction=output.prediction.float().cpu(), source_motion=source.motion,
                             driving_motion=driving, rendered_motion=rendered_motion, output=output)

    def batches(self, source: Tensor, driving: Iterable[Tensor], reference: Optional[Tensor] = None
                ) -> Iterator[AnimatedBatch]:
        """Animate batches of driving frames ``(B, 3, H, W)`` as they come: the original demo's
        loop. ``reference`` ``(3, H, W)``: the driving frame relative motion is taken from
        (default: the first frame seen)."""
        prepared: Optional[PreparedSource] = None
        initial: Optional[TensorBundle] = None
        for frames in driving:
            if prepared is None:
                prepared = self.prepare_source(source, sample=frames)  # the first batch chooses the engine
                initial = self.describe((frames[:1] if reference is None else reference[None]).to(frames.device))
            yield self.step(prepared, frames, initial)

    def animate(self, source: Tensor, driving: Tensor, best_frame: Optional[int] = None,
                on_batch: Optional[Callable[[int], object]] = None) -> Tensor:
        """Animate ``(T, 3, H, W)`` driving frames; returns ``(T, 3, H, W)`` on the CPU.

        Motion is taken relative to driving frame ``best_frame`` (default 0; see
        :meth:`find_best_frame`). Every frame is animated against that one reference, so frames
        are animated in order, in one pass. ``on_batch(n)`` is called after each batch of ``n``
        frames (a progress bar's update).
        """
        reference = driving[best_frame or 0]
        predictions = []
        for batch in self.batches(source, driving.split(self.batch_size), reference):
            predictions.append(batch.prediction)
            if on_batch is not None:
                on_batch(len(batch.prediction))
        return torch.cat(predictions)

    def find_best_frame(self, source: Tensor, driving: Tensor) -> int:
        """Index of the driving frame whose pose, normalised for position and scale, is closest to
        the source's: the best frame to take relative motion from."""
        source_points = self.model.points(self.prepare_source(source, sample=driving).motion)[0]
        return best_matching_frame(source_points, self.model.points(self.describe(driving)))
