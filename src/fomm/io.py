"""Atomic file writing: every output goes to a hidden temporary file beside its final name and is
renamed over it only when complete, so an interrupted or failed run never leaves a truncated file
under the final name, and never destroys the previous version of it.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

__all__ = ["atomic_path", "atomic_torch_save", "write_text_atomic"]


def temporary_sibling(path: Path) -> Path:
    """A hidden, unique name in the same folder (same file system, so the rename is atomic) with
    the same suffix (writers that pick the format from the suffix still see it)."""
    return path.with_name(f".{path.stem}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")


@contextmanager
def atomic_path(path: str | Path, make_parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; on success it is flushed to disk
    and renamed over ``path``; on any exception (Ctrl-C included) it is deleted.

    >>> with atomic_path("out/result.png") as temporary:
    ...     image.save(temporary)
    """
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(path)
    try:
        yield temporary
        _fsync(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    if not path.is_file():
        return
    with open(path, "rb") as file:
        os.fsync(file.fileno())


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return path


def atomic_torch_save(payload: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically: the previous file stays intact until the new one is
    complete on disk."""
    path = Path(path)
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)
    return path
