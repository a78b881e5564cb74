"""Checks on output paths, made before any work starts, so a long run never fails at its end
because of a typo in where to write."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Optional, Sequence

from ..errors import OutputPathError, UserError

__all__ = ["check_distinct", "check_fps", "check_output_file", "check_output_folder"]

#: Frame rates a video container holds faithfully (GIF: up to 100, in hundredths of a second).
MIN_FPS, MAX_FPS = 1.0, 240.0


def check_output_file(path: Path, suffixes: Sequence[str], option: str, create_folder: bool = False) -> Path:
    """``path`` must end in one of ``suffixes`` and must not be a folder; its folder must exist,
    or with ``create_folder`` be creatable (it is then made by the writer, after the work)."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{option} {path} is a folder; give a file name ending in {', '.join(suffixes)}")
    if path.suffix.lower() not in suffixes:
        raise OutputPathError(f"{option} {path}: unknown extension '{path.suffix}' (use {', '.join(suffixes)})")
    if create_folder:
        existing = next(parent for parent in path.absolute().parents if parent.exists())
        if not existing.is_dir():
            raise OutputPathError(f"{option} {path}: {existing} is a file, not a folder")
        return path
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


def check_distinct(outputs: Sequence[Path], inputs: Mapping[str, Optional[Path]]) -> None:
    """No two outputs the same file, and no output over an input (which would destroy it)."""
    resolved = [Path(path).resolve() for path in outputs]
    for position, path in enumerate(resolved):
        if path in resolved[:position]:
            raise OutputPathError(f"{outputs[position]} is given as two outputs; each output needs its own file")
        for option, source in inputs.items():
            if source is not None and Path(source).exists() and Path(source).resolve() == path:
                raise OutputPathError(f"{outputs[position]} is also {option}: writing it would destroy the input")


def check_fps(fps: Optional[float]) -> None:
    """A frame rate, when given, is a finite number in [MIN_FPS, MAX_FPS]."""
    if fps is None:
        return
    if not math.isfinite(fps) or not MIN_FPS <= fps <= MAX_FPS:
        raise UserError(f"--fps must be a number from {MIN_FPS:g} to {MAX_FPS:g}, got {fps:g}")
