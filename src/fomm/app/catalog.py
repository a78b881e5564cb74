"""The catalog of models a server offers: the bundled one, and every checkpoint found in a
``--models`` folder paired with its config, of any family (FOMM, TPSMM, MRAA). Models are loaded
when first asked for and the most recently used few are kept in memory.

A checkpoint's config is found, in this order:

1. a YAML file of the same name beside it (``vox-cpk.pth.tar`` + ``vox-cpk.yaml``);
2. ``config.yaml`` in its folder (the layout of a ``fomm train`` run: ``run/checkpoint.pth.tar``);
3. the packaged config of a published FOMM checkpoint's name (``vox-cpk`` -> ``vox-256``,
   ``taichi-adv-cpk`` -> ``taichi-adv-256``);
4. none: the checkpoint carries its own (``fomm``'s checkpoints do), or it is an original one whose
   weights fit exactly one packaged published config (see :func:`fomm.checkpoint.read_checkpoint`).

Each entry's name in the page says its family.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..assets import BUNDLED_CHECKPOINT
from ..checkpoint import load_checkpoint, peek_family
from ..models.registry import FAMILIES, packaged_configs
from ..errors import UserError
from ..models import MotionModel

__all__ = ["BUNDLED_MODEL_NAME", "CHECKPOINT_SUFFIXES", "ModelCatalog", "ModelEntry", "bundled_model", "find_models"]

logger = logging.getLogger(__name__)

BUNDLED_MODEL_NAME = "bundled (FOMM, sprites, 64x64)"
#: Longest first: ``x.pth.tar`` is a checkpoint named ``x``, not ``x.pth``.
CHECKPOINT_SUFFIXES = (".pth.tar", ".pth", ".pt", ".ckpt")
# Checkpoints are looked for this many levels deep: models/runs/run/checkpoint.pth.tar.
SEARCH_DEPTH = 3


@dataclass(frozen=True)
class ModelEntry:
    """A model on offer: its ``name`` in the page, its ``checkpoint`` file and its ``config``
    (a YAML file or a packaged config's name; None when the checkpoint carries its own)."""

    name: str
    checkpoint: Path
    config: Optional[str] = None


def bundled_model() -> ModelEntry:
    """The model that ships inside the package (its checkpoint carries its config)."""
    return ModelEntry(BUNDLED_MODEL_NAME, BUNDLED_CHECKPOINT)


def _checkpoint_stem(path: Path) -> Optional[str]:
    """``vox-cpk`` for ``vox-cpk.pth.tar``; None when ``path`` is not named like a checkpoint."""
    name = path.name
    for suffix in CHECKPOINT_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)]
    return None


def _config_for(checkpoint: Path, stem: str, packaged: Sequence[str]) -> Optional[str]:
    for candidate in (checkpoint.with_name(f"{stem}.yaml"), checkpoint.with_name(f"{stem}.yml"),
                      checkpoint.with_name("config.yaml")):
        if candidate.is_file():
            return str(candidate)
    published = stem[:-len("-cpk")] + "-256" if stem.endswith("-cpk") else None
    return published if published in packaged else None


def _candidates(folder: Path, depth: int) -> list[Path]:
    found = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and _checkpoint_stem(path) is not None:
            found.append(path)
        elif path.is_dir() and depth > 1 and not path.name.startswith("."):
            found.extend(_candidates(path, depth - 1))
    return found


def find_models(folder: Optional[Path] = None) -> list[ModelEntry]:
    """The bundled model, then each checkpoint in ``folder`` (and its sub-folders, down to
    ``folder/a/b/checkpoint``) with its config, named by its path inside ``folder``. Raises UserError when ``folder``
    is given but is not a folder."""
    entries = [bundled_model()]
    if folder is None:
        return entries
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--models {folder}: not a folder (give the folder that holds your checkpoints)")
    packaged = packaged_configs()
    for checkpoint in _candidates(folder, SEARCH_DEPTH):
        stem = _checkpoint_stem(checkpoint)
        assert stem is not None
        config = _config_for(checkpoint, stem, packaged)
        family = peek_family(checkpoint)
        name = checkpoint.relative_to(folder).as_posix()
        entries.append(ModelEntry(f"{name} ({FAMILIES[family].label})" if family else name, checkpoint, config))
        logger.info("model %s: %s (config: %s)", entries[-1].name, checkpoint,
                    config or "the checkpoint's own")
    if len(entries) == 1:
        logger.warning("no checkpoints (%s) found in %s", ", ".join(CHECKPOINT_SUFFIXES), folder)
    return entries


class ModelCatalog:
    """Models by name, each loaded on ``device`` when first asked for; the ``keep`` most
    recently used stay loaded. Safe to use from several threads (one loads at a time)."""

    def __init__(self, entries: Sequence[ModelEntry], device: torch.device | str = "cpu", keep: int = 2) -> None:
        if not entries:
            raise UserError("no models to serve")
        names = [entry.name for entry in entries]
        if len(set(names)) != len(names):
            raise UserError(f"two models share a name: {names}")
        self._entries = {entry.name: entry for entry in entries}
        self.device = torch.device(device)
        self.keep = max(1, keep)
        self._loaded: OrderedDict[str, MotionModel] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        """Model names in the order given (the bundled model first)."""
        return list(self._entries)

    def entry(self, name: str) -> ModelEntry:
        if name not in self._entries:
            raise UserError(f"unknown model {name!r} (available: {', '.join(self._entries)})")
        return self._entries[name]

    def load(self, name: str) -> MotionModel:
        """The model called ``name``, in eval mode on the catalog's device. Raises the
        checkpoint's CheckpointError/ConfigError (a UserError) when it cannot be loaded."""
        entry = self.entry(name)
        with self._lock:
            if name in self._loaded:
                self._loaded.move_to_end(name)
                return self._loaded[name]
            logger.info("loading model %s from %s", name, entry.checkpoint)
            model = load_checkpoint(entry.checkpoint, config=entry.config, device=self.device)
            self._loaded[name] = model
            while len(self._loaded) > self.keep:
                self._loaded.popitem(last=False)
            return model
