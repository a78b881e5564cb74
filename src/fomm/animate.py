"""Animating a source image with the motion of a driving video.

``Animator`` works on tensors: images ``(3, H, W)`` or ``(T, 3, H, W)`` float in [0, 1] at the
model's frame size (see :func:`prepare_frames` to get there from arrays of any size). The source's
keypoints and encoder features are computed once and reused for every driving frame; driving
frames go through the networks ``batch_size`` at a time. Which runtime and arithmetic run the
networks is an :class:`~fomm.backends.Engine` chosen by ``backend`` and ``precision`` (see
:mod:`fomm.backends`); the motion transfer between the two networks is always fp32 torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .backends import BACKENDS, PRECISIONS, Engine, Measurement, PreparedSource, choose_engine
from .errors import UserError
from .keypoints import Keypoints, best_matching_frame, relative_keypoints
from .models import FommModel, GeneratorOutput

__all__ = ["BACKENDS", "PRECISIONS", "AnimationStep", "Animator", "MotionSettings", "PreparedSource",
           "prepare_frames", "to_uint8"]

#: Driving frames the ``auto`` choice is measured on (with the source).
CALIBRATION_FRAMES = 2
#: Driving frames (of the first batch) that calibrate ``int8``, with the source.
INT8_CALIBRATION_FRAMES = 8


@dataclass(frozen=True)
class MotionSettings:
    """How driving motion is transferred (the original ``normalize_kp`` flags)."""

    relative: bool = True
    adapt_scale: bool = False
    relative_jacobian: bool = True


@dataclass
class AnimationStep:
    """One batch of animated frames with what produced them (for visualisation)."""

    prediction: Tensor  # (B, 3, H, W) in [0, 1]
    kp_driving: Keypoints  # detected on the driving frames
    kp_used: Keypoints  # what the generator was given (relative or absolute)
    output: GeneratorOutput


def prepare_frames(frames: np.ndarray | Tensor, height: int, width: int, crop: bool = False) -> Tensor:
    """Images of any size → ``(T, 3, height, width)`` float in [0, 1].

    ``frames``: ``(T, H, W, 3)`` or ``(H, W, 3)`` uint8 or float array, or a ``(T, 3, H, W)`` /
    ``(3, H, W)`` tensor. With ``crop`` the largest centred region of the target aspect ratio is
    kept before resizing; otherwise the whole frame is resized (aspect ratio not kept).
    """
    if isinstance(frames, np.ndarray):
        array = frames[None] if frames.ndim == 3 else frames
        if array.ndim != 4 or array.shape[-1] != 3:
            raise ValueError(f"expected RGB frames of shape (T, H, W, 3), got {frames.shape}")
        if not array.flags.writeable:  # decoded frames can be read-only; torch wants to own them
            array = array.copy()
        tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2)
        tensor = tensor.float() / 255.0 if array.dtype == np.uint8 else tensor.float()
    else:
        tensor = frames[None] if frames.dim() == 3 else frames
        if tensor.dim() != 4 or tensor.shape[1] != 3:
            raise ValueError(f"expected RGB frames of shape (T, 3, H, W), got {tuple(frames.shape)}")
        tensor = tensor.float()
    if crop:
        tensor = _centre_crop(tensor, height / width)
    if tensor.shape[2:] != (height, width):
        tensor = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False,
                               antialias=True)
    return tensor.clamp(0, 1)


def to_uint8(frames: Tensor) -> np.ndarray:
    """``(T, 3, H, W)`` float in [0, 1] -> ``(T, H, W, 3)`` uint8."""
    return (frames.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)


def _centre_crop(frames: Tensor, aspect: float) -> Tensor:
    """Largest centred crop with height / width == ``aspect``."""
    _, _, height, width = frames.shape
    if height / width > aspect:
        new_height = round(width * aspect)
        top = (height - new_height) // 2
        return frames[:, :, top:top + new_height]
    new_width = round(height / aspect)
    left = (width - new_width) // 2
    return frames[:, :, :, left:left + new_width]


class Animator:
    """Moves a source image the way a driving video moves.

    ``relative=True`` transfers the driving keypoints' motion relative to the first (or best)
    driving frame onto the source's keypoints (the paper's relative transfer); ``False`` uses the
    driving keypoints as they are. ``adapt_scale`` scales the motion by the ratio of the source's
    and the initial driving frame's keypoint hull sizes.

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

    def __init__(self, model: FommModel, relative: bool = True, adapt_scale: bool = False,
                 relative_jacobian: bool = True, batch_size: int = 8, precision: str = "fp32",
                 backend: str = "torch", compile: bool = False, engine: Optional[Engine] = None) -> None:
        if batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {batch_size}")
        if precision not in PRECISIONS:
            raise UserError(f"unknown precision {precision!r} (use one of {', '.join(PRECISIONS)})")
        if backend not in BACKENDS:
            raise UserError(f"unknown backend {backend!r} (use one of {', '.join(BACKENDS)})")
        self.model = model.eval()
        self.relative = relative
        self.adapt_scale = adapt_scale
        self.relative_jacobian = relative_jacobian
        self.batch_size = batch_size
        self.precision = precision
        self.backend = backend
        self.compile = compile
        self._engine: Optional[Engine] = engine
        #: What the ``auto`` choice measured (empty until then, or when it was known already).
        self.measurements: list[Measurement] = []

    @classmethod
    def with_settings(cls, model: FommModel, motion: MotionSettings, **options) -> "Animator":
        """An animator with the transfer flags of ``motion``; ``options`` as the constructor's."""
        return cls(model, relative=motion.relative, adapt_scale=motion.adapt_scale,
                   relative_jacobian=motion.relative_jacobian, **options)

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
    def prepare_source(self, source: Tensor) -> PreparedSource:
        """Keypoints and encoder features of a ``(3, H, W)`` or ``(1, 3, H, W)`` source."""
        image = source[None] if source.dim() == 3 else source
        return self._engine_for(image, image).prepare_source(image)

    @torch.inference_mode()
    def detect(self, frames: Tensor) -> Keypoints:
        """Keypoints of ``(T, 3, H, W)`` frames, in batches of ``batch_size``."""
        engine = self._engine_for(frames[:1], frames)
        return Keypoints.cat([engine.detect(batch) for batch in frames.split(self.batch_size)])

    @torch.inference_mode()
    def step(self, source: PreparedSource, frames: Tensor, kp_initial: Keypoints) -> AnimationStep:
        """Animate one batch of driving ``frames`` ``(B, 3, H, W)`` given the initial keypoints."""
        engine = self._engine_for(source.image, frames)
        kp_driving = engine.detect(frames)
        batch = frames.shape[0]
        kp_source = source.keypoints.expand(batch)
        kp_used = relative_keypoints(kp_source, kp_driving, kp_initial.to(kp_driving.value.device).expand(batch),
                                     adapt_movement_scale=self.adapt_scale,
                                     use_relative_movement=self.relative,
                                     use_relative_jacobian=self.relative_jacobian)
        output = engine.generate(source, kp_source=kp_source, kp_driving=kp_used)
        return AnimationStep(prediction=output.prediction, kp_driving=kp_driving, kp_used=kp_used, output=output)

    def steps(self, source: Tensor, driving: Iterable[Tensor], kp_initial: Optional[Keypoints] = None
              ) -> Iterator[AnimationStep]:
        """Animate batches of driving frames ``(B, 3, H, W)`` as they come.

        The initial driving keypoints are those of the first frame seen unless ``kp_initial``
        (batch 1) is given.
        """
        prepared: Optional[PreparedSource] = None
        for frames in driving:
            if prepared is None:
                # The first batch is the sample the engine is chosen on.
                self._engine_for(source[None] if source.dim() == 3 else source, frames)
                prepared = self.prepare_source(source)
            if kp_initial is None:
                kp_initial = self.detect(frames[:1])
            yield self.step(prepared, frames, kp_initial)

    def animate(self, source: Tensor, driving: Tensor, best_frame: Optional[int] = None,
                on_batch: Optional[Callable[[int], object]] = None) -> Tensor:
        """Animate ``(T, 3, H, W)`` driving frames; returns ``(T, 3, H, W)`` on the CPU.

        Motion is taken relative to driving frame ``best_frame`` (default 0): frames from it on
        are animated forwards, frames before it backwards (see :meth:`find_best_frame`).
        ``on_batch(n)`` is called after each batch of ``n`` frames (a progress bar's update).
        """
        start = best_frame or 0
        self._engine_for(source[None] if source.dim() == 3 else source, driving[start:])
        kp_initial = self.detect(driving[start:start + 1])
        after = self._predict(source, driving[start:], kp_initial, on_batch)
        if start == 0:
            return after
        before = self._predict(source, driving[:start].flip(0), kp_initial, on_batch).flip(0)
        return torch.cat([before, after])

    def _predict(self, source: Tensor, driving: Tensor, kp_initial: Keypoints,
                 on_batch: Optional[Callable[[int], object]]) -> Tensor:
        predictions = []
        for step in self.steps(source, driving.split(self.batch_size), kp_initial):
            predictions.append(step.prediction.cpu())
            if on_batch is not None:
                on_batch(len(step.prediction))
        return torch.cat(predictions)

    def stream(self, source: Tensor, frames: Iterable[Tensor]) -> Iterator[Tensor]:
        """Yield one animated ``(3, H, W)`` frame per driving ``(3, H, W)`` frame, as they arrive
        (a webcam, a pipe). The source is encoded once."""
        for step in self.steps(source, (frame[None] for frame in frames)):
            yield step.prediction[0].cpu()

    def find_best_frame(self, source: Tensor, driving: Tensor) -> int:
        """Index of the driving frame whose keypoints, normalised for position and scale, are
        closest to the source's: the best frame to take relative motion from."""
        self._engine_for(source[None] if source.dim() == 3 else source, driving)
        kp_source = self.prepare_source(source).keypoints.value[0]
        return best_matching_frame(kp_source, self.detect(driving).value)
