"""Choosing a backend and precision: explicitly, or ``auto`` cheaply, from the CPU flags and a
small probe.

``auto`` never measures what the flags rule out, and never runs the whole model per candidate:

1. the flags (:mod:`.hardware`, held to ``ONEDNN_MAX_CPU_ISA``) say which arithmetics have
   hardware here: bf16 with AMX or AVX512-BF16, fp16 with AMX-FP16, int8 with VNNI, AMX-INT8 or
   AVX2;
2. a matrix-product probe (:mod:`.probe`, well under a second) says whether bf16/fp16 actually
   beat fp32 on this core (AVX512-BF16 does on AMD Zen 4, not on an Intel Xeon held below AMX);
3. int8 is a candidate once the model has been quantised (``--precision int8``, which exports and
   calibrates it: tens of seconds, once), OpenVINO once the model has been exported: ``auto``
   never starts either itself, so a first run stays seconds from its first frame;
4. the preferred reduced arithmetic is checked on the first driving frame against the plain fp32
   networks: kept if within :data:`MIN_PSNR_DB`, else the next (fp32 last). fp32 runs on torch
   where the model has wide residual blocks (the fused networks run them as Winograd
   convolutions, :mod:`.winograd`), else on OpenVINO where the model is exported.

The choice is remembered per model object in memory and per checkpoint, machine (flags and cap),
threads and input size in ``$FOMM_CACHE/choices.json``.
"""

from __future__ import annotations

import importlib.metadata

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Optional

import torch
from torch import Tensor

from ..errors import UserError
from ..export import OnnxFiles
from ..models import MotionModel, MotionSettings
from .base import BACKENDS, PRECISIONS, Engine
from .cache import (cached_export, choices_path, compiled_blobs_dir, exported_files, model_fingerprint, read_choice,
                    write_choice)
from .fused import has_winograd_layers
from .hardware import cpu_info, device_summary, reduced_precisions
from .onnxruntime_engine import OnnxRuntimeEngine, onnxruntime_available
from .openvino_engine import OpenVinoEngine, openvino_available
from .probe import reduced_speedup
from .quantization import find_int8_graphs, int8_graphs, nncf_available
from .torch_engine import TorchEngine

logger = logging.getLogger(__name__)

__all__ = ["FP32_TOLERANCE", "MIN_PSNR_DB", "Candidate", "Measurement", "candidates", "choose_engine",
           "create_engine", "installed_backends", "psnr"]

#: Reduced precision is used only where its frames stay this close to fp32's (peak signal 1).
MIN_PSNR_DB = 40.0
#: An explicit fp32 promises frames within this of the torch fp32 ones.
FP32_TOLERANCE = 1e-4
#: ``auto`` tries a reduced float precision only where the probe ran it this much faster than fp32
#: (a whole model gains less than one convolution: the fp32 parts stay).
AUTO_MIN_SPEEDUP = 1.5


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


def _int8_possible(device: torch.device, backends: list[str]) -> bool:
    """int8 runs on OpenVINO on the CPU with NNCF installed, where the CPU has int8 kernels: VNNI
    or AMX-INT8, or AVX2 (pairwise u8 x s8 products, slower than VNNI but measured ahead of fp32)."""
    info = cpu_info()
    return device.type == "cpu" and "openvino" in backends and nncf_available() and \
        (info.has_int8_dot or "avx2" in info.flags)


def candidates(device: torch.device, backend: str = "auto", precision: str = "auto") -> list[Candidate]:
    """Every (backend, precision) this request can run as on ``device``.

    Reduced float precisions only where the hardware computes them natively (see
    :func:`~fomm.backends.hardware.reduced_precisions`); int8 only on OpenVINO (with NNCF); the
    exported runtimes only on the CPU and only when installed; onnxruntime only in fp32.
    """
    _check_choice(backend, precision)
    reduced = reduced_precisions(device)
    precisions = ["fp32", *reduced, "int8"] if precision == "auto" else [precision]
    backends = ["torch"] if backend == "auto" and device.type != "cpu" else \
        [name for name in installed_backends() if backend in ("auto", name)]
    found = []
    for name in backends:
        for arithmetic in precisions:
            if arithmetic == "int8":
                if name == "openvino" and (precision == "int8" or _int8_possible(device, backends)):
                    found.append(Candidate(name, arithmetic))
                continue
            if name == "onnxruntime" and arithmetic != "fp32":
                continue
            if name == "openvino" and arithmetic != "fp32" and arithmetic not in reduced:
                continue  # OpenVINO would quietly compute in fp32 and call it bf16
            found.append(Candidate(name, arithmetic))
    return found


def _bundled_sample(model: MotionModel, count: int = 8) -> tuple[Tensor, Tensor]:
    """The bundled source (1, C, H, W) and first ``count`` driving frames at the model's size, in
    [0, 1] (the one resize of :mod:`fomm.data.frames`): int8 calibration frames when the caller
    has none of its own."""
    from ..assets import BUNDLED_DRIVING, BUNDLED_SOURCE
    from ..data.frames import fit_frames
    from ..data.media import read_driving_video, read_source_image

    height, width, _ = model.frame_shape
    source = fit_frames(read_source_image(BUNDLED_SOURCE), height, width)
    return source, fit_frames(read_driving_video(BUNDLED_DRIVING)[0][:count], height, width)


def _int8_engine(model: MotionModel, calibration: Optional[tuple[Tensor, Tensor]]) -> OpenVinoEngine:
    """The model's exported graphs quantised to int8 on OpenVINO: the quantisation already cached
    for this model when there is one (quantising takes 10-20 s for a vox-256 model on two cores,
    most of a short clip's time, so it is done once per model, not per clip), else one made now,
    calibrated on ``calibration`` (source (1, C, H, W), driving (T, C, H, W): the user's first
    clip) or, without it, on the bundled samples."""
    if not nncf_available():
        raise UserError("int8 needs NNCF and OpenVINO: pip install 'fomm[int8]'")
    files = exported_files(model)
    blob_cache = compiled_blobs_dir()
    cached = find_int8_graphs(list(files.graphs()))
    if cached is not None:
        return OpenVinoEngine(model, OnnxFiles(*cached, files.layouts), "int8", blob_cache=blob_cache)
    if calibration is None:
        calibration = _bundled_sample(model)
    source, driving = (tensor.detach().to("cpu", torch.float32) for tensor in calibration)
    quantized = int8_graphs(model, files, source[:1], driving, blob_cache=blob_cache)
    return OpenVinoEngine(model, quantized, "int8", blob_cache=blob_cache)


def create_engine(model: MotionModel, backend: str, precision: str, compile: bool = False,
                  calibration: Optional[tuple[Tensor, Tensor]] = None) -> Engine:
    """An engine for an explicit ``backend`` and ``precision`` (neither ``auto``). ``calibration``
    (source (1, C, H, W), driving (T, C, H, W) in [0, 1]) calibrates int8; the others ignore it."""
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
    if precision == "int8":
        return _int8_engine(model, calibration)
    return OpenVinoEngine(model, exported_files(model), precision, blob_cache=compiled_blobs_dir())


def _run(model: MotionModel, engine: Engine, source: Tensor, driving: Tensor) -> Tensor:
    """Frames of ``source`` moved to the poses of ``driving`` (absolute motion) by ``engine``."""
    prepared = engine.prepare_source(source)
    motion = engine.describe(driving)
    return engine.render(prepared, model.transfer(prepared.motion, motion, motion[:1], MotionSettings("absolute"))
                         ).prediction.float().cpu()


def _check(model: MotionModel, engine: Engine, source: Tensor, driving: Tensor, reference: Tensor) -> Measurement:
    """Run ``engine`` once on the sample and compare its frames with ``reference`` (fp32). The
    rate includes the first call's kernel set-up: an indication, not a benchmark."""
    start = time.perf_counter()
    frames = _run(model, engine, source, driving)
    seconds = time.perf_counter() - start
    return Measurement(engine.backend, engine.precision, driving.shape[0] / seconds,
                       float((frames - reference).abs().max()), psnr(frames, reference))


def _preferences(model: MotionModel, found: list[Candidate], precision: str) -> tuple[list[Candidate], dict[str, float]]:
    """The candidates worth trying, best first, decided without running the model: from the
    flags (``found`` holds only what they allow), a cached export or int8 quantisation (never
    made here: that takes tens of seconds), and the reduced-precision probe. Returns them and the
    probe's speed-ups."""
    if precision != "auto":  # an explicit precision, backend auto: only its candidates
        found = [candidate for candidate in found if candidate.precision == precision]
    cpu = model.device.type == "cpu"
    exported = cpu and cached_export(model).exist()
    float_backend = "openvino" if exported and any(c.backend == "openvino" for c in found) else "torch"
    speedups: dict[str, float] = {}
    ordered: list[Candidate] = []
    if Candidate("openvino", "int8") in found and _int8_cached(model):
        ordered.append(Candidate("openvino", "int8"))
    for reduced in ("bf16", "fp16"):
        candidate = Candidate(float_backend, reduced)
        if candidate not in found:
            candidate = Candidate("torch", reduced)
        if candidate not in found:
            continue
        if cpu:
            speedups[reduced] = reduced_speedup(reduced, model.device)
            if speedups[reduced] < AUTO_MIN_SPEEDUP:
                logger.info("auto: %s ruled out: a matrix-product probe ran it %.2fx as fast as fp32 here", reduced,
                            speedups[reduced])
                continue
        ordered.append(candidate)
    # In fp32 the fused torch networks run wide residual blocks as Winograd convolutions, which
    # the exported runtimes do not: vox-256 3.3 frames/s against OpenVINO's 2.3 on a 2-core Zen 4.
    fp32 = Candidate("torch" if cpu and has_winograd_layers(model) else float_backend, "fp32")
    if precision in ("auto", "fp32"):
        ordered.append(fp32 if fp32 in found else Candidate("torch", "fp32"))
    elif not ordered:  # an explicit reduced precision the probe finds slow here: the user's call
        ordered = found[:1]
    return ordered, speedups


def _decide(model: MotionModel, found: list[Candidate], source: Tensor, driving: Tensor, precision: str,
            compile: bool) -> tuple[Candidate, Optional[Engine], list[Measurement], dict[str, float]]:
    """The first of :func:`_preferences` whose frames on one sample frame stay within
    :data:`MIN_PSNR_DB` of the plain fp32 networks' (fp32 itself needs no check)."""
    ordered, speedups = _preferences(model, found, precision)
    sample = driving[:1]
    measurements: list[Measurement] = []
    reference: Optional[Tensor] = None
    for candidate in ordered:
        if candidate.precision == "fp32" or len(ordered) == 1:
            return candidate, None, measurements, speedups
        if reference is None:
            # The plain networks: nothing to build, and the exact frames.
            with torch.inference_mode():
                reference = _run(model, TorchEngine(model, "fp32", optimize=False), source, sample)
        try:
            engine = create_engine(model, candidate.backend, candidate.precision, compile=compile)
            with torch.inference_mode():
                measurement = _check(model, engine, source, sample, reference)
        except Exception as error:  # a runtime that cannot run this model here: note it, go on
            logger.warning("auto: %s failed on this model: %s", candidate, error)
            measurements.append(Measurement(candidate.backend, candidate.precision, 0.0, math.inf, 0.0,
                                            error=f"{type(error).__name__}: {error}"))
            continue
        measurements.append(measurement)
        logger.info("auto: %s PSNR %.1f dB against fp32 on the first frame", candidate, measurement.psnr_db)
        if measurement.acceptable(precision):
            return candidate, engine, measurements, speedups
    return ordered[-1], None, measurements, speedups


def _why(chosen: Candidate, speedups: dict[str, float], measurements: list[Measurement]) -> str:
    """One line on why ``chosen`` won, for the log."""
    checked = "; ".join(f"{m.backend} {m.precision} {m.psnr_db:.1f} dB against fp32" for m in measurements)
    probed = "; ".join(f"{name} probe {value:.2f}x fp32" for name, value in speedups.items())
    return "; ".join(part for part in (f"flags: {cpu_info().isa_summary()}", probed, checked) if part)


_memory: dict[str, Candidate] = {}


def forget_choices() -> None:
    """Forget the choices this process made (the ones on disk stay): the next ``auto`` looks in
    ``$FOMM_CACHE`` again, or measures."""
    _memory.clear()


def _choice_key(model: MotionModel, backend: str, precision: str, source: Tensor) -> str:
    """What a choice depends on: the weights, the hardware (flags and ISA cap) and threads, the
    image size, what was asked, the runtimes' versions and whether an int8 quantisation exists."""
    versions = [f"torch {torch.__version__}"]
    for name in installed_backends()[1:]:
        # From the package metadata: importing openvino just for its version would be costly.
        versions.append(f"{name} {_installed_version(name)}")
    height, width = source.shape[-2:]
    parts = [model_fingerprint(model), device_summary(model.device), f"{torch.get_num_threads()} threads",
             f"{height}x{width}", f"asked {backend} {precision}", *versions]
    if _int8_possible(model.device, list(installed_backends())) and backend in ("auto", "openvino"):
        # Quantising the model (--precision int8) adds a candidate: choose again then.
        parts.append("int8 quantised" if _int8_cached(model) else "int8 not quantised")
    return " | ".join(parts)


def _int8_cached(model: MotionModel) -> bool:
    export = cached_export(model)
    return export.exist() and find_int8_graphs(list(export.graphs())) is not None


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
        logger.debug("running %s %s, as asked", backend, precision)
        return create_engine(model, backend, precision, compile=compile, calibration=(source, driving)), []
    found = candidates(model.device, backend, precision)
    if not found and precision == "int8":
        raise UserError("int8 runs on the openvino backend, with NNCF: pip install 'fomm[int8]'")
    if not found:
        raise UserError(f"no installed backend runs {backend} at {precision} on {model.device} "
                        f"(installed: {', '.join(installed_backends())})")
    if len(found) == 1:
        logger.info("running %s: the only candidate here (flags: %s)", found[0], device_summary(model.device))
        return create_engine(model, found[0].backend, found[0].precision, compile=compile,
                             calibration=(source, driving)), []
    key = _choice_key(model, backend, precision, source)
    known = _memory.get(key)
    if known is None:
        record = read_choice(key)
        if record is not None and Candidate(record.get("backend"), record.get("precision")) in found:
            known = Candidate(record["backend"], record["precision"])
    if known is not None:
        logger.info("auto: running %s (chosen before on this machine; delete %s to choose again)", known,
                    choices_path())
        _memory[key] = known
        return create_engine(model, known.backend, known.precision, compile=compile), []
    logger.info("auto: choosing among %s on this model (once per checkpoint and machine)",
                ", ".join(str(candidate) for candidate in found))
    chosen, engine, measurements, speedups = _decide(model, found, source, driving, precision, compile)
    logger.info("auto: running %s (%s)", chosen, _why(chosen, speedups, measurements))
    _memory[key] = chosen
    write_choice(key, {"backend": chosen.backend, "precision": chosen.precision, "probe_speedups": speedups,
                       "measurements": [asdict(measurement) for measurement in measurements]})
    return engine or create_engine(model, chosen.backend, chosen.precision, compile=compile), measurements
