"""The TPSMM reference fixtures (tests/data/tpsmm-reference, made by running the original code; its
README says how) and small TPSMM configs for fast tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fomm.models.tpsmm import TpsmmConfig, TpsmmModel, load_original_checkpoint, load_tpsmm_config

TPSMM_REFERENCE = Path(__file__).resolve().parent / "data" / "tpsmm-reference"


def tpsmm_fixture(name: str) -> Path:
    """A file of the TPSMM reference set; missing is a failure, never a skip."""
    path = TPSMM_REFERENCE / name
    assert path.is_file(), f"TPSMM reference fixture missing: {path}"
    return path


def reference_checkpoint() -> dict[str, Any]:
    """The original-layout checkpoint the fixtures were made with, rebuilt from weights.npz as its
    README says: ``<network>/<key>:q`` (int8) times ``2 ** <key>:exponent`` is the float32 value,
    exactly; other entries are stored as they are. ``epoch`` 3, as the original file."""
    stored = np.load(tpsmm_fixture("weights.npz"))
    checkpoint: dict[str, Any] = {}
    for entry in stored.files:
        if entry.endswith(":exponent"):
            continue
        if entry.endswith(":q"):
            key = entry[: -len(":q")]
            value = torch.from_numpy(stored[entry]).float() * 2.0 ** int(stored[f"{key}:exponent"])
        else:
            key, value = entry, torch.from_numpy(stored[entry].copy())
        network, parameter = key.split("/", 1)
        checkpoint.setdefault(network, {})[parameter] = value
    checkpoint["epoch"] = 3
    return checkpoint


def reference_config() -> TpsmmConfig:
    return load_tpsmm_config(tpsmm_fixture("config.yaml"))


def reference_model() -> TpsmmModel:
    return load_original_checkpoint(reference_checkpoint(), reference_config(), source="weights.npz")


def reference_io() -> dict[str, torch.Tensor]:
    return torch.load(tpsmm_fixture("io.pt"), weights_only=True)


def tiny_config(**common: Any) -> TpsmmConfig:
    """The fixture's small architecture (K = 3, 64x64) with train params, ``common`` overriding
    ``common_params`` keys (``bg``, ``multi_mask``, ``num_tps``)."""
    data = copy.deepcopy(reference_config().to_dict())
    data["model_params"]["common_params"].update(common)
    return TpsmmConfig.from_dict(data, source="tiny")


def smooth_images(batch: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """``(batch, 3, size, size)`` smooth random images in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, 8, 8, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
