"""Files the backends keep between runs, under ``$FOMM_CACHE`` (default ``~/.cache/fomm``):

``onnx/<key>/``
    a model's exported graphs (:mod:`fomm.export`), keyed by a hash of its weights and config,
    the export format and the torch version, with a ``manifest.json`` of their SHA-256: a graph
    truncated or overwritten since is detected when the cache is used, and exported again with one
    warning;
``choices.json``
    which backend and precision ``auto`` picked, per model, machine and input size, with the
    measurements behind each choice (delete the file to measure again).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import weakref
from pathlib import Path
from typing import Any, Optional

import torch

from ..export import EXPORT_FORMAT, OnnxFiles, export_onnx
from ..errors import OutputPathError
from ..files import FolderLock, manifest_problem, staged_outputs, write_manifest, write_text_atomic
from ..models import MotionModel

logger = logging.getLogger(__name__)

__all__ = ["cache_dir", "cached_export", "choices_path", "compiled_blobs_dir", "copy_cached_export", "export_lock", "exported_files", "model_fingerprint", "read_choice",
           "write_choice"]

CHOICES_FILE = "choices.json"
#: The cache's folders: one export per model (``onnx/<key>/``, beside it ``<key>.lock/`` while it
#: is made), and OpenVINO's compiled blobs.
EXPORTS_FOLDER = "onnx"
COMPILED_BLOBS_FOLDER = "openvino"
LOCK_SUFFIX = ".lock"
#: How long a run waits for another process's export of the same model: exporting the largest
#: model here took 20-60 s on two busy cores, ten times that is a process that is stuck.
EXPORT_WAIT_SECONDS = 600.0

# Per model object: (sum of its tensors' in-place version counters, fingerprint). Training
# changes weights in place, which bumps the counters, so a stale fingerprint is recomputed.
_fingerprints: "weakref.WeakKeyDictionary[MotionModel, tuple[int, str]]" = weakref.WeakKeyDictionary()


def cache_dir() -> Path:
    """``$FOMM_CACHE``, or ``~/.cache/fomm``."""
    configured = os.environ.get("FOMM_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "fomm"


def compiled_blobs_dir() -> Path:
    """Where OpenVINO keeps the compiled models (its ``CACHE_DIR``)."""
    return cache_dir() / COMPILED_BLOBS_FOLDER


def export_lock(folder: Path) -> Path:
    """The lock folder of the export in ``folder``: held while the export is made."""
    return folder.parent / f"{folder.name}{LOCK_SUFFIX}"


def _inference_tensors(model: MotionModel) -> list[tuple[str, torch.Tensor]]:
    return [(f"{prefix}.{name}", tensor) for prefix in model.inference_modules()
            if getattr(model, prefix, None) is not None
            for name, tensor in getattr(model, prefix).state_dict().items()]


def model_fingerprint(model: MotionModel) -> str:
    """A hash of the family, the config and the inference networks' weights: equal for the same
    checkpoint however it was loaded (networks used only in training play no part)."""
    tensors = _inference_tensors(model)
    version = sum(tensor._version for _, tensor in tensors)
    known = _fingerprints.get(model)
    if known is not None and known[0] == version:
        return known[1]
    digest = hashlib.blake2b(digest_size=16)
    digest.update(model.family.encode())
    digest.update(model.config.model_dump_json().encode())
    for name, tensor in tensors:
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    fingerprint = digest.hexdigest()
    _fingerprints[model] = (version, fingerprint)
    return fingerprint


def cached_export(model: MotionModel) -> OnnxFiles:
    """Where the model's ONNX graphs are cached (they may not be there yet)."""
    folder = cache_dir() / EXPORTS_FOLDER / f"{model_fingerprint(model)}-format{EXPORT_FORMAT}-torch{torch.__version__}"
    return OnnxFiles.in_folder(folder)


#: Cache folders checked in this process, with the state of their files then (path, size,
#: modification time): a folder is hashed once per process unless its files change.
_verified: dict[Path, tuple] = {}


def _file_states(files: OnnxFiles) -> tuple:
    return tuple((str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in files.all())


def _intact(files: OnnxFiles) -> bool:
    """Whether the cached graphs are all there and match their manifest; a damaged cache is
    removed, with a warning saying why, so that it is exported again."""
    folder = files.render.parent
    if not folder.is_dir():
        return False
    try:
        states = _file_states(files)
    except OSError:
        states = None
    if states is not None and _verified.get(folder) == states:
        return True
    problem = manifest_problem(folder, files.all())
    if problem is None:
        _verified[folder] = states
        return True
    logger.warning("the cached export in %s is damaged (%s): exporting the model again", folder, problem)
    shutil.rmtree(folder, ignore_errors=True)
    _verified.pop(folder, None)
    return False


def exported_files(model: MotionModel) -> OnnxFiles:
    """The model's ONNX graphs from the cache, exported there first if missing or damaged (tens
    of seconds for a large model, once)."""
    files = cached_export(model)
    if _intact(files):
        return files
    folder = files.render.parent
    # Another process exporting the same model at the same moment: wait for its export, then use
    # it; but not for ever, should that process be stuck.
    with FolderLock(export_lock(folder), "being exported", wait=True,
                    wait_seconds=EXPORT_WAIT_SECONDS):
        if not _intact(files):
            logger.info("exporting the model to ONNX for the exported backends (once per checkpoint): %s", folder)
            export_onnx(model, folder, check=False)
            write_manifest(folder, files.all())
    return files


def copy_cached_export(model: MotionModel, out_dir: Path) -> Optional[OnnxFiles]:
    """Copy the model's cached graphs (if an earlier run exported them, and they are intact) into
    ``out_dir``: the same files :func:`~fomm.export.export_onnx` would write, at the default
    opset. None when there is nothing usable cached."""
    cached = cached_export(model)
    if not _intact(cached):
        return None
    files = OnnxFiles.in_folder(out_dir)
    with staged_outputs(files.all()) as staged:
        for source, target in zip(cached.all(), files.all()):
            shutil.copyfile(source, staged[target])
    return files


def choices_path() -> Path:
    """The file of `auto`'s remembered choices."""
    return cache_dir() / CHOICES_FILE


def _read_choices() -> dict[str, Any]:
    path = choices_path()
    try:
        choices = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:  # unreadable or corrupt: measure again, rewrite it
        logger.warning("ignoring %s (%s); the choices will be measured again", path, error)
        return {}
    return choices if isinstance(choices, dict) else {}


def read_choice(key: str) -> Optional[dict[str, Any]]:
    """The record stored under ``key`` by :func:`write_choice`, or None."""
    record = _read_choices().get(key)
    return record if isinstance(record, dict) else None


def write_choice(key: str, record: dict[str, Any]) -> None:
    """Store ``record`` under ``key`` (read-modify-write of one small JSON file, atomically
    replaced; a concurrent writer may drop the other's entry, which is then measured again).
    A cache that cannot be written is logged and skipped: it only saves time."""
    choices = _read_choices()
    choices[key] = record
    try:
        write_text_atomic(choices_path(), json.dumps(choices, indent=1, sort_keys=True))
    except (OSError, OutputPathError) as error:  # a read-only or full disk
        logger.warning("could not write %s: %s", choices_path(), error)
