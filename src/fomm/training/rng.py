"""The randomness of a training run: seeding, independent per-(epoch, rank) seeds, and the random
states a checkpoint carries so that a resumed run continues the same random streams.

A run draws from torch's, numpy's and Python's global generators (weights, equivariance warps,
augmentations of datasets without their own generator) and, for a dataset with the
``FramesDataset`` interface (``reseed(seed)`` and ``_rng()`` returning the numpy ``Generator`` of
this process), from that dataset's own generator. All of them are captured and restored here.
"""

from __future__ import annotations

import json
import random
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["capture_rng_state", "derive_seed", "reseed_dataset", "restore_rng_state", "seed_everything"]

#: How deep to look through dataset wrappers (``DatasetRepeater.dataset``...) for the one that
#: owns a generator; wrappers are one or two levels deep, the bound only guards against loops.
_MAX_WRAPPER_DEPTH = 8


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derive_seed(seed: int, epoch: int, rank: int) -> int:
    """A 62-bit seed for one (run seed, epoch, rank): numpy's ``SeedSequence`` makes the streams
    of different epochs and processes independent, which ``seed + epoch`` would not."""
    state = np.random.SeedSequence([seed % 2**32, epoch, rank]).generate_state(2, np.uint32)
    return (int(state[0]) << 30) ^ int(state[1])


def _generator_owner(dataset: Optional[Dataset]) -> Optional[Dataset]:
    """The dataset (or the one a wrapper such as ``DatasetRepeater`` holds) with a ``reseed``
    method, or None."""
    for _ in range(_MAX_WRAPPER_DEPTH):
        if dataset is None:
            return None
        if hasattr(dataset, "reseed"):
            return dataset
        dataset = getattr(dataset, "dataset", None)
    return None


def reseed_dataset(dataset: Dataset, seed: int) -> None:
    """Reseed the dataset's own generator (if it has one) and the global Python and numpy ones,
    which datasets without their own generator draw from."""
    owner = _generator_owner(dataset)
    if owner is not None:
        owner.reseed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def capture_rng_state(dataset: Dataset) -> dict[str, Any]:
    """This process's random states, in types ``torch.load(weights_only=True)`` accepts
    (tensors, numbers, strings, lists, dicts)."""
    version, internal, gauss = random.getstate()
    _, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None,
        "python": [version, list(internal), gauss],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(position),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "dataset": None,
    }
    owner = _generator_owner(dataset)
    if owner is not None and hasattr(owner, "_rng"):
        # A numpy Generator's state holds 128-bit integers, which only survive as text.
        state["dataset"] = json.dumps(owner._rng().bit_generator.state)
    return state


def restore_rng_state(state: dict[str, Any], dataset: Dataset) -> None:
    """Put back the states :func:`capture_rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached"]))
    owner = _generator_owner(dataset)
    if state.get("dataset") and owner is not None and hasattr(owner, "_rng"):
        owner._rng().bit_generator.state = json.loads(state["dataset"])
