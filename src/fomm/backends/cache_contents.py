"""What ``$FOMM_CACHE`` holds, and emptying it (``fomm cache``).

The cache only saves time: every file in it is made again when missing. It grows by one ONNX
export (with its int8 quantisations, 10-400 MB) for every checkpoint animated with an exported
runtime, and by OpenVINO's compiled blobs; nothing removes them on its own, so a user who animates
many checkpoints (each epoch of a training run, say) needs to see what it holds and clear it.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import OutputPathError
from ..files import FolderLock
from .cache import EXPORTS_FOLDER, LOCK_SUFFIX, cache_dir, choices_path, compiled_blobs_dir, export_lock
from .quantization import quantisation_folders

__all__ = ["CacheEntry", "ClearedCache", "cache_entries", "clear_cache"]


@dataclass(frozen=True)
class CacheEntry:
    """One thing the cache holds. ``kind``: "export" (one model's ONNX graphs, with its int8
    quantisations), "compiled" (OpenVINO's compiled blobs, all models) or "choices" (`auto`'s
    remembered choices); ``modified``: seconds since the epoch of its newest file."""

    kind: str
    path: Path
    size_bytes: int
    modified: float
    description: str


@dataclass(frozen=True)
class ClearedCache:
    """What :func:`clear_cache` did: the bytes it freed, and the exports it left because another
    process was writing them."""

    freed_bytes: int
    kept_in_use: list[Path]


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return [file for file in path.rglob("*") if file.is_file() and not file.is_symlink()]


def _size_and_time(files: list[Path]) -> tuple[int, float]:
    """The total size of ``files`` and the newest modification time among them."""
    sizes, times = 0, [0.0]
    for file in files:
        try:
            stat = file.stat()
        except OSError:  # removed meanwhile by another process
            continue
        sizes += stat.st_size
        times.append(stat.st_mtime)
    return sizes, max(times)


def _export_description(folder: Path) -> str:
    """The model family of an export and how many int8 quantisations it holds."""
    try:
        family = json.loads((folder / "graphs.json").read_text(encoding="utf-8")).get("family", "?")
    except (OSError, ValueError, AttributeError):
        family = "unfinished or damaged (made again when used)"
    quantised = len(quantisation_folders(folder))
    return f"{family}, {quantised} int8 quantisation(s)" if quantised else str(family)


def _exports() -> list[Path]:
    folder = cache_dir() / EXPORTS_FOLDER
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.is_dir() and not path.name.endswith(LOCK_SUFFIX))


def cache_entries() -> list[CacheEntry]:
    """Everything in the cache (``$FOMM_CACHE``), exports newest first, then the compiled blobs
    and the choices. An empty or missing cache gives an empty list."""
    entries = []
    for folder in _exports():
        entries.append(CacheEntry("export", folder, *_size_and_time(_files(folder)), _export_description(folder)))
    entries.sort(key=lambda entry: entry.modified, reverse=True)
    blobs = compiled_blobs_dir()
    blob_files = _files(blobs) if blobs.is_dir() else []
    if blob_files:
        entries.append(CacheEntry("compiled", blobs, *_size_and_time(blob_files),
                                  f"{len(blob_files)} OpenVINO compiled blob(s)"))
    choices = choices_path()
    if choices.is_file():
        try:
            count = len(json.loads(choices.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            count = 0
        entries.append(CacheEntry("choices", choices, *_size_and_time([choices]), f"{count} `auto` choice(s)"))
    return entries


def _remove_export(folder: Path) -> bool:
    """Remove one export (or only its lock folder, when the export is gone), unless a process
    holds its lock: one exporting it now."""
    lock_folder = export_lock(folder)
    try:
        with FolderLock(lock_folder, "being exported"):
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(lock_folder, ignore_errors=True)
    except OutputPathError:
        return False
    return True


def _remove_blobs(folder: Path, cutoff: Optional[float]) -> int:
    """Remove OpenVINO's compiled blobs (those older than ``cutoff`` when given: each blob is one
    model and setting); return the bytes freed."""
    freed = 0
    for blob in _files(folder):
        try:
            stat = blob.stat()
            if cutoff is None or stat.st_mtime <= cutoff:
                blob.unlink()
                freed += stat.st_size
        except OSError:  # removed meanwhile
            continue
    if cutoff is None:
        shutil.rmtree(folder, ignore_errors=True)
    return freed


def clear_cache(older_than_days: Optional[float] = None) -> ClearedCache:
    """Remove what the cache (``$FOMM_CACHE``) holds, or with ``older_than_days`` only what has
    not changed for that long (an export as a whole, a compiled blob each). An export that
    another process is writing is left (and named). Runs that need a removed file make it again."""
    cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
    freed, kept = 0, []
    for entry in cache_entries():
        if entry.kind == "compiled":
            freed += _remove_blobs(entry.path, cutoff)
            continue
        if cutoff is not None and entry.modified > cutoff:
            continue
        if entry.kind == "export":
            if not _remove_export(entry.path):
                kept.append(entry.path)
                continue
        else:  # the choices file
            entry.path.unlink(missing_ok=True)
        freed += entry.size_bytes
    if cutoff is None:  # the lock folders of exports that are gone, unless one is being made
        for lock_folder in (cache_dir() / EXPORTS_FOLDER).glob(f"*{LOCK_SUFFIX}"):
            export = lock_folder.with_name(lock_folder.name[: -len(LOCK_SUFFIX)])
            if not export.exists():
                _remove_export(export)
    return ClearedCache(freed, kept)
