"""The reference sets of the families' original code (tests/data/<family>-reference; each README
says how it was made): their original-layout checkpoints rebuilt from ``weights.npz``, bit for bit,
and read back as a user would, from a file, through :func:`fomm.load_checkpoint`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

import fomm

DATA = Path(__file__).resolve().parent / "data"


def fixture(family: str, name: str) -> Path:
    """A file of ``<family>-reference``; missing is a failure, never a skip."""
    path = DATA / f"{family}-reference" / name
    assert path.is_file(), f"reference fixture missing: {path}"
    return path


def original_checkpoint(family: str, epoch: int = 3) -> dict[str, Any]:
    """The original ``torch.save`` dictionary the fixtures were made with, rebuilt from
    weights.npz as its README says: ``<network>/<key>:q`` (int8) times ``2 ** <key>:exponent``
    is the float32 value, exactly; other entries are stored as they are."""
    stored = np.load(fixture(family, "weights.npz"))
    checkpoint: dict[str, Any] = {"epoch": epoch}
    for entry in stored.files:
        if entry.endswith(":exponent"):
            continue
        if entry.endswith(":q"):
            key = entry[: -len(":q")]
            exponent = stored[f"{key}:exponent"].astype(np.float64)
            value = torch.from_numpy((stored[entry].astype(np.float64) * 2.0 ** exponent).astype(np.float32))
        else:
            key, value = entry, torch.from_numpy(stored[entry].copy())
        network, parameter = key.split("/", 1)
        checkpoint.setdefault(network, {})[parameter] = value
    return checkpoint


def load_original(checkpoint: dict[str, Any], config: Any = None, name: str = "original.pth.tar"):
    """``checkpoint`` written as an original file and read back by :func:`fomm.load_checkpoint`."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        torch.save(checkpoint, path)
        return fomm.load_checkpoint(path, config=config)


def reference_io(family: str) -> dict[str, torch.Tensor]:
    return torch.load(fixture(family, "io.pt"), weights_only=True)
