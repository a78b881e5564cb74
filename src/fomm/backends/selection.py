"""Choosing a backend and precision: explicitly, or ``auto`` by measuring the candidates on the
actual model and input.

``auto`` runs each candidate (backend, precision) that this machine offers on a short sample
(the source and the first driving frames), compares its frames with the torch fp32 ones and
times it; the fastest candidate whose frames stay within :data:`MIN_PSNR_DB` of fp32 wins (with
an explicit ``fp32``, within :data:`FP32_TOLERANCE`). The choice is remembered per model object
in memory and per checkpoint, machine and input size in ``$FOMM_CACHE/choices.json``, so the
measurement runs once.
"""

from __future__ import annotations

import importlib.metadata

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from ..errors import UserError
from ..models import MotionModel
from .base import BACKENDS, PRECISIONS, Engine
from .cache import cache_dir, cached_export, exported_files, model_fingerprint, read_choice, write_choice
from .hardware import device_summary, reduced_precisions
from .onnxruntime_engine import OnnxRuntimeEngine, onnxruntime_available
from .openvino_engine import OpenVinoEngine, openvino_available
from .torch_engine import TorchEngine

logger = logging.getLogger(__name__)

__all__ = ["FP32_TOLERANCE", "MIN_PSNR_DB", "Candidate", "Measurement", "candidates", "choose_engine",
           "create_engine", "installed_backends", "psnr"]

#: Reduced precision is used only where its frames stay this close to fp32's (peak signal 1).
MIN_PSNR_DB = 40.0
#: An explicit fp32 promises frames within this of the torch fp32 ones.
FP32_TOLERANCE = 1e-4
#: Exporting a model takes tens of seconds; ``auto`` does it only for networks that need more
#: than this per driving frame (vox-256: 89; the bundled sprites model: 0.7), where an exported
#: runtime can win that back within one clip. Counted, not timed, so a busy machine does not
#: change the decision.
EXPORT_WORTH_GFLOP_PER_FRAME = 10.0


@dataclass(frozen=True)
class Candidate:
    backend: str
    precision: str

    def __str__(self) -> str:
        return f"{self.backend} {self.precision}"


@dataclass
class Measurement:
    """One candidate on the calibration sample: frames per second (driving frames, source
    encoded once), and its frames against torch fp32's."""

    backend: str
    precision: str
    frames_per_second: float
    max_abs_diff: float
    psnr_db: float
    error: Optional[str] = None

    def acceptable(self, requested_precision: str) -> bool:
        """Ran, and close enough to fp32 for what was asked: ``auto`` needs :data:`MIN_PSNR_DB`,
        an explicit ``fp32`` :data:`FP32_TOLERANCE`; an explicit bf16/fp16 is the user's call."""
        if self.error is not None or not math.isfinite(self.max_abs_diff):
            return False
        if requested_precision == "fp32":
            return self.max_abs_diff <= FP32_TOLERANCE
        if requested_precision == "auto":
            return self.psnr_db >= MIN_PSNR_DB
        return True


def psnr(frames: Tensor, reference: Tensor) -> float:
    """Peak signal-to-noise ratio in dB of frames in [0, 1] (inf when identical)."""
    mse = float((frames.float() - reference.float()).pow(2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def installed_backends() -> tuple[str, ...]:
    """The backends this Python environment can run (torch always)."""
    return ("torch",) + tuple(name for name, available in (("onnxruntime", onnxruntime_available()),
                                                           ("openvino", openvino_available())) if available)


def _check_choice(backend: str, precision: str) -> None:
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r} (use one of {', '.join(BACKENDS)})")
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r} (use one of {', '.join(PRECISIONS)})")


def candidates(device: torch.device, backend: str = "auto", precision: str = "auto") -> list[Candidate]:
    """Every (backend, precision) worth measuring for this request on ``device``.

    Reduced precisions only where the hardware computes them natively (see
    :func:`~fomm.backends.hardware.reduced_precisions`); the exported runtimes only on the CPU and
    only when installed; onnxruntime only in fp32.
    """
    _check_choice(backend, precision)
    reduced = reduced_precisions(device)
    precisions = ["fp32", *reduced] if precision == "auto" else [precision]
    backends = ["torch"] if backend == "auto" and device.type != "cpu" else \
        [name for name in installed_backends() if backend in ("auto", name)]
    found = []
    for name in backends:
        for arithmetic in precisions:
            if name == "onnxruntime" and arithmetic != "fp32":
                continue
            if name == "openvino" and arithmetic != "fp32" and arithmetic not in reduced:
                continue  # OpenVINO would quietly compute in fp32 and call it bf16
            found.append(Candidate(name, arithmetic))
    return found


def create_engine(model: MotionModel, backend: str, precision: str, compile: bool = False) -> Engine:
    """An engine for an explicit ``backend`` and ``precision`` (neither ``auto``)."""
    _check_choice(backend, precision)
    if "auto" in (backend, precision):
        raise ValueError("create_engine needs an explicit backend and precision; use choose_engine for auto")
    if backend == "torch":
        return TorchEngine(model, precision, compile=compile)
    if model.device.type != "cpu":
        raise UserError(f"the {backend} backend runs on the CPU; the model is on {model.device} "
                        f"(use --device cpu, or --backend torch)")
    if backend == "onnxruntime":
        OnnxRuntimeEngine.check_precision(precision)  # before the export: a refusal takes no minute
        return OnnxRuntimeEngine(model, exported_files(model), precision)
    return OpenVinoEngine(model, exported_files(model), precision, blob_cache=cache_dir() / "openvino")


def _run(engine: Engine, source: Tensor, driving: Tensor) -> Tensor:
    prepared = engine.prepare_source(source)
    return engine.render(prepared, engine.describe(driving)).prediction.float().cpu()


def _measure(engine_factory: Callable[[], Engine], source: Tensor, driving: Tensor, reference: Optional[Tensor],
             best_seconds: float) -> tuple[Engine, Tensor, float]:
    """Build an engine, run it once (warm-up: primitives and compilation), and again for the
    time unless the warm-up alone shows it far behind the best so far. Returns the engine, its
    frames and the seconds per batch."""
    engine = engine_factory()
    start = time.perf_counter()
    frames = _run(engine, source, driving)
    seconds = time.perf_counter() - start
    if seconds < 3 * best_seconds or reference is None:
        start = time.perf_counter()
        frames = _run(engine, source, driving)
        seconds = min(seconds, time.perf_counter() - start)
    return engine, frames, seconds


def _calibrate(model: MotionModel, found: list[Candidate], source: Tensor, driving: Tensor, precision: str,
               compile: bool) -> tuple[Candidate, Optional[Engine], list[Measurement]]:
    """Measure every candidate against torch fp32 (measured first: it is the reference)."""
    count = driving.shape[0]
    with torch.inference_mode():
        reference_engine, reference, reference_seconds = _measure(lambda: TorchEngine(model, "fp32"), source, driving,
                                                                  None, math.inf)
    gflop_per_frame = _gflop_per_frame(model, source, driving)
    measurements: list[Measurement] = []
    best: tuple[float, Candidate, Optional[Engine]] = (math.inf, Candidate("torch", "fp32"), None)
    torch_fp32 = Candidate("torch", "fp32")
    if torch_fp32 in found:
        measurements.append(Measurement("torch", "fp32", count / reference_seconds, 0.0, math.inf))
        best = (reference_seconds, torch_fp32, reference_engine)
    # Exporting for the exported runtimes costs tens of seconds: only for heavy networks.
    worth_exporting = gflop_per_frame > EXPORT_WORTH_GFLOP_PER_FRAME or cached_export(model).exist()
    for candidate in found:
        if candidate == torch_fp32:
            continue
        if candidate.backend != "torch" and not worth_exporting:
            logger.info("auto: not exporting for %s (%.1f GFLOP per frame: fast in torch already)", candidate,
                        gflop_per_frame)
            continue
        try:
            with torch.inference_mode():
                engine, frames, seconds = _measure(
                    lambda: create_engine(model, candidate.backend, candidate.precision, compile=compile),
                    source, driving, reference, best[0])
        except Exception as error:  # a runtime that cannot run this model here: note it, go on
            logger.warning("auto: %s failed on this model: %s", candidate, error)
            measurements.append(Measurement(candidate.backend, candidate.precision, 0.0, math.inf, 0.0,
                                            error=f"{type(error).__name__}: {error}"))
            continue
        difference = float((frames - reference).abs().max())
        measurement = Measurement(candidate.backend, candidate.precision, count / seconds, difference,
                                  psnr(frames, reference))
        measurements.append(measurement)
        logger.info("auto: %s %.2f frames/s, max diff %.2e, PSNR %.1f dB", candidate,
                    measurement.frames_per_second, difference, measurement.psnr_db)
        if measurement.acceptable(precision) and seconds < best[0]:
            best = (seconds, candidate, engine)
    if best[2] is None and torch_fp32 not in found:
        logger.warning("auto: no candidate of %s ran acceptably; using torch fp32",
                       ", ".join(str(candidate) for candidate in found))
    return best[1], best[2], measurements


_memory: dict[str, Candidate] = {}


def forget_choices() -> None:
    """Forget the choices this process made (the ones on disk stay): the next ``auto`` looks in
    ``$FOMM_CACHE`` again, or measures."""
    _memory.clear()


def _gflop_per_frame(model: MotionModel, source: Tensor, driving: Tensor) -> float:
    """The work of one animated frame, counted on the plain networks (the fused engine's oneDNN
    kernels are invisible to the counter), the source's encoding included: a small overestimate."""
    with torch.inference_mode(), FlopCounterMode(display=False) as flops:
        model.animate_frames(source[:1], driving[:1])
    return flops.get_total_flops() / 1e9


def _choice_key(model: MotionModel, backend: str, precision: str, source: Tensor) -> str:
    """What a choice depends on: the weights, the hardware and threads, the image size, what was
    asked and the runtimes' versions."""
    versions = [f"torch {torch.__version__}"]
    for name in installed_backends()[1:]:
        # From the package metadata: importing openvino just for its version would be costly.
        versions.append(f"{name} {_installed_version(name)}")
    height, width = source.shape[-2:]
    return " | ".join([model_fingerprint(model), device_summary(model.device), f"{torch.get_num_threads()} threads",
                       f"{height}x{width}", f"asked {backend} {precision}", *versions])


def _installed_version(module: str) -> str:
    """The version of the distribution that provides ``module`` (onnxruntime may come as
    onnxruntime-gpu or onnxruntime-openvino)."""
    for distribution in importlib.metadata.packages_distributions().get(module, [module]):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "?"


def choose_engine(model: MotionModel, backend: str, precision: str, source: Tensor, driving: Tensor,
                  compile: bool = False) -> tuple[Engine, list[Measurement]]:
    """The engine for a request that may say ``auto``, measured on ``source`` ``(1, C, H, W)``
    and a few ``driving`` frames ``(B, C, H, W)`` when there is more than one candidate.

    Returns the engine and the measurements made now (empty when the choice was known).
    """
    if "auto" not in (backend, precision):
        return create_engine(model, backend, precision, compile=compile), []
    found = candidates(model.device, backend, precision)
    if not found:
        raise UserError(f"no installed backend runs {backend} at {precision} on {model.device} "
                        f"(installed: {', '.join(installed_backends())})")
    if len(found) == 1:
        return create_engine(model, found[0].backend, found[0].precision, compile=compile), []
    key = _choice_key(model, backend, precision, source)
    known = _memory.get(key)
    if known is None:
        record = read_choice(key)
        if record is not None and Candidate(record.get("backend"), record.get("precision")) in found:
            known = Candidate(record["backend"], record["precision"])
    if known is not None:
        logger.info("auto: using %s (measured before on this machine)", known)
        _memory[key] = known
        return create_engine(model, known.backend, known.precision, compile=compile), []
    logger.info("auto: measuring %s on this model (once per checkpoint and machine)",
                ", ".join(str(candidate) for candidate in found))
    chosen, engine, measurements = _calibrate(model, found, source, driving, precision, compile)
    logger.info("auto: chose %s", chosen)
    _memory[key] = chosen
    write_choice(key, {"backend": chosen.backend, "precision": chosen.precision,
                       "measurements": [asdict(measurement) for measurement in measurements]})
    return engine or create_engine(model, chosen.backend, chosen.precision, compile=compile), measurements
