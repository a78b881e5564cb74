"""Checks on output paths, made before any work starts, so a long run never fails at its end
because of a typo in where to write."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import OutputPathError

__all__ = ["check_output_file", "check_output_folder"]


def check_output_file(path: Path, suffixes: Sequence[str], option: str, create_folder: bool = False) -> Path:
    """``path`` must end in one of ``suffixes`` and must not be a folder; its folder must exist,
    unless ``create_folder`` (then it is created, as for pictures)."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{option} {path} is a folder; give a file name ending in {', '.join(suffixes)}")
    if path.suffix.lower() not in suffixes:
        raise OutputPathError(f"{option} {path}: unknown extension '{path.suffix}' (use {', '.join(suffixes)})")
    if create_folder and not path.parent.exists():
        path.parent.mkdir(parents=True)
    if not path.parent.is_dir():
        raise OutputPathError(f"{option} {path}: folder {path.parent} does not exist")
    return path


def check_output_folder(path: Path, option: str) -> Path:
    """``path`` must be a folder or not exist yet (it is created), with an existing parent."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{option} {path} exists and is not a folder")
    if not path.exists() and not path.parent.is_dir() and path.parent != Path(""):
        raise OutputPathError(f"{option} {path}: folder {path.parent} does not exist")
    return path
