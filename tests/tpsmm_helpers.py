"""The TPSMM reference fixtures (tests/data/tpsmm-reference, made by running the original code; its
README says how) and small TPSMM configs for fast tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from fomm.models.tpsmm import TpsmmConfig, TpsmmModel

from .reference_fixtures import fixture, load_original, original_checkpoint
from .reference_fixtures import reference_io as family_reference_io


def tpsmm_fixture(name: str) -> Path:
    """A file of the TPSMM reference set; missing is a failure, never a skip."""
    return fixture("tpsmm", name)


def reference_checkpoint() -> dict[str, Any]:
    """The original-layout checkpoint the fixtures were made with (``epoch`` 3)."""
    return original_checkpoint("tpsmm")


def reference_config() -> TpsmmConfig:
    return TpsmmConfig.load(tpsmm_fixture("config.yaml"))


def reference_model() -> TpsmmModel:
    return load_original(reference_checkpoint(), reference_config())


def reference_io() -> dict[str, torch.Tensor]:
    return family_reference_io("tpsmm")


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
