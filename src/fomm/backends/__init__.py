"""Runtimes for animation: PyTorch (fp32, or bf16/fp16 autocast, channels-last fused networks),
onnxruntime and OpenVINO (running the exported graphs), and the measured ``auto`` choice.

>>> engine, measurements = choose_engine(model, "auto", "auto", source, driving_sample)
>>> prepared = engine.prepare_source(source)
>>> frames = engine.generate(prepared, prepared.keypoints.expand(B), engine.detect(driving)).prediction
"""

from .base import BACKENDS, PRECISIONS, Engine, PreparedSource
from .hardware import cpu_info, device_summary, reduced_precisions
from .selection import (FP32_TOLERANCE, MIN_PSNR_DB, Candidate, Measurement, candidates, choose_engine, create_engine,
                        installed_backends, psnr)

__all__ = [
    "BACKENDS",
    "FP32_TOLERANCE",
    "MIN_PSNR_DB",
    "PRECISIONS",
    "Candidate",
    "Engine",
    "Measurement",
    "PreparedSource",
    "candidates",
    "choose_engine",
    "cpu_info",
    "create_engine",
    "device_summary",
    "installed_backends",
    "psnr",
    "reduced_precisions",
]
