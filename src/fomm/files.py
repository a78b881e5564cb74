"""Atomic file writing: every output goes to a hidden temporary file beside its final name and is
renamed over it only when complete, so an interrupted or failed run never leaves a truncated file
under the final name, and never destroys the previous version of it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import torch

from .errors import OutputPathError

logger = logging.getLogger(__name__)

__all__ = ["MANIFEST", "atomic_path", "atomic_torch_save", "file_digest", "manifest_problem", "require_free_space",
           "staged_outputs", "sweep_stale_temporaries", "write_manifest", "write_text_atomic", "FolderLock"]


#: Failures of the storage, not of the program: reported as the user's problem, in one line.
STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def temporary_sibling(path: Path) -> Path:
    """A hidden, unique name in the same folder (same file system, so the rename is atomic) with
    the same suffix (writers that pick the format from the suffix still see it)."""
    return path.with_name(f".{path.stem}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")


def sweep_stale_temporaries(path: Path) -> list[Path]:
    """Delete temporaries of ``path`` left by writers that died without cleaning up (SIGKILL, a
    power cut): those whose process is gone, including a writer's temporary of a staged temporary
    (:func:`staged_outputs` stages, then each writer writes atomically). Returns what was deleted."""
    pattern = re.compile(r"\.{1,2}" + re.escape(path.stem) + r"\.partial-(\d+)-[0-9a-f]{8}"
                         r"(?:\.partial-\d+-[0-9a-f]{8})?" + re.escape(path.suffix))
    swept = []
    try:
        names = [entry.name for entry in path.parent.iterdir() if entry.name.startswith(".")]
    except OSError:
        return swept
    for name in names:
        match = pattern.fullmatch(name)
        if match and not _process_alive(int(match.group(1))):
            candidate = path.parent / name
            candidate.unlink(missing_ok=True)
            swept.append(candidate)
    return swept


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@contextmanager
def atomic_path(path: str | Path, make_parents: bool = True, name: Optional[str | Path] = None) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; on success it is flushed to disk
    and renamed over ``path``; on any exception (Ctrl-C included) it is deleted. Temporaries of
    the same target left by dead processes are swept first. ``name``: the path to name in an
    error (the final one, when ``path`` is itself a staged temporary).

    >>> with atomic_path("out/result.png") as temporary:
    ...     image.save(temporary)
    """
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent.is_dir():
        sweep_stale_temporaries(path)
    temporary = temporary_sibling(path)
    try:
        yield temporary
        _fsync(temporary)
        os.replace(temporary, path)
    except OSError as error:
        _remove(temporary)
        if error.errno in STORAGE_ERRORS:
            raise OutputPathError(f"cannot write {name or path}: {os.strerror(error.errno)}") from None
        raise
    except BaseException:
        _remove(temporary)
        raise


def _remove(path: Path) -> None:
    """Delete a temporary if it is there; a read-only file system refuses even that (EROFS)."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


@contextmanager
def staged_outputs(paths: Iterable[str | Path]) -> Iterator[dict[Path, Path]]:
    """All of several outputs or none: yields ``{final path: temporary path}``; the temporaries
    are renamed to their final names only once every one of them has been written, and all are
    deleted if anything fails (a full or read-only disk is then an :class:`OutputPathError`
    naming the output). Final paths must be distinct. Temporaries of the same outputs left by
    dead processes are swept first."""
    targets = [Path(path) for path in paths]
    for path in targets:
        if path.parent.is_dir():
            sweep_stale_temporaries(path)
    staged = {path: temporary_sibling(path) for path in targets}
    try:
        yield staged
        for path, temporary in staged.items():
            if not temporary.is_file():
                raise FileNotFoundError(f"{path} was not written")
        for path, temporary in staged.items():
            os.replace(temporary, path)
    except BaseException as error:
        for temporary in staged.values():
            _remove(temporary)
        storage = _storage_cause(error) if isinstance(error, OSError) else None
        if storage is not None and storage.errno in STORAGE_ERRORS:
            failed = next((path for path in targets if str(path.parent) in str(storage.filename or "")), None)
            where = failed.parent if failed is not None else targets[0].parent if targets else "the output folder"
            raise OutputPathError(f"cannot write into {where}: {os.strerror(storage.errno)}") from None
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
        # Through a Python file, so that a full disk surfaces as OSError(ENOSPC), not as torch's
        # opaque "enforce fail" RuntimeError.
        try:
            with open(temporary, "wb") as file:
                torch.save(payload, file)
        except RuntimeError as error:
            raise _storage_cause(error) or error
    return path


def _storage_cause(error: BaseException) -> OSError | None:
    """The OSError behind torch's writer failure (it re-raises the file's error as a
    RuntimeError, with the OSError as its context)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def require_free_space(folder: Path, size: int) -> None:
    """Raise the ``OSError`` a write would (ENOSPC) when the disk of ``folder`` has fewer than
    ``size`` bytes free: a full disk is found before work of tens of seconds (an export), not
    after it. A disk that fills later still fails later, and is handled there."""
    free = shutil.disk_usage(folder).free
    if free < size:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({size / 2 ** 20:.1f} MiB needed, "
                                    f"{free / 2 ** 20:.1f} MiB free)")


class FolderLock:
    """An exclusive claim on a folder for the life of a process (``fcntl.flock`` on
    ``<folder>/.fomm.lock``): a second process that asks gets an :class:`OutputPathError` naming
    the first, or with ``wait`` waits for it (a cache that one process fills while another would
    fill it too), at most ``wait_seconds`` (None: as long as it takes), then the same error. The
    kernel drops the claim when its process ends, even by SIGKILL, so a crashed run never leaves a
    stale lock; a live holder that is stuck is what the limit is for."""

    NAME = ".fomm.lock"
    #: How often a waiting process asks again.
    POLL_SECONDS = 0.2

    def __init__(self, folder: str | Path, purpose: str = "in use", wait: bool = False,
                 wait_seconds: Optional[float] = None) -> None:
        self.path = Path(folder) / self.NAME
        self.purpose = purpose
        self.wait = wait
        self.wait_seconds = wait_seconds
        self._file = None

    def __enter__(self) -> "FolderLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self.path, "a+")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "another process"
            if not self.wait:
                file.close()
                raise OutputPathError(f"{self.path.parent} is {self.purpose} by {holder}; wait for it to finish "
                                      f"or choose another folder") from None
            logger.info("waiting for %s, %s by %s", self.path.parent, self.purpose, holder)
            if not self._wait_for(file):
                file.close()
                raise OutputPathError(f"{self.path.parent} has been {self.purpose} by {holder} for "
                                      f"{self.wait_seconds:.0f} s, longer than it takes; if that process is "
                                      f"stuck, stop it and run again") from None
        file.seek(0)
        file.truncate()
        file.write(f"pid {os.getpid()}")
        file.flush()
        self._file = file
        return self

    def _wait_for(self, file) -> bool:
        """Take the lock once its holder lets go; False when ``wait_seconds`` run out first."""
        import fcntl

        if self.wait_seconds is None:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX)
            return True
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(self.POLL_SECONDS)

    def __exit__(self, *exc_info) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the flock
            self._file = None


#: The file, in a folder of cached files, that holds each file's SHA-256 (written last).
MANIFEST = "manifest.json"


def file_digest(path: Path) -> str:
    """The SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path, paths: Iterable[Path], **extra: Any) -> Path:
    """Write ``folder/manifest.json`` with the SHA-256 of each of ``paths`` (files of ``folder``)
    and ``extra`` values. Written last and atomically: a folder without a manifest (a crash while
    it was filled) is never trusted."""
    files = {Path(path).name: file_digest(Path(path)) for path in paths}
    return write_text_atomic(Path(folder) / MANIFEST, json.dumps({"files": files, **extra}, indent=1, sort_keys=True))


def manifest_problem(folder: Path, paths: Iterable[Path]) -> Optional[str]:
    """None when every one of ``paths`` is in ``folder``'s manifest with its current SHA-256, else
    what is wrong (a file missing, changed or truncated; no manifest)."""
    try:
        expected = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{folder} has no readable {MANIFEST}"
    for path in paths:
        path = Path(path)
        if not path.is_file():
            return f"{path.name} is missing"
        if expected.get(path.name) != file_digest(path):
            return f"{path.name} does not match its recorded SHA-256 (truncated or overwritten)"
    return None
