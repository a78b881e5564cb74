"""Shared fixtures: the reference data written by the original implementation.

The reference set lives in the repository (tests/data/fomm-reference, a verbatim copy of what the
project was given; its README says how it was produced), so a clone anywhere runs every test that
checks "matches the original code". It is never skipped: a missing file is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "data" / "fomm-reference"
CONFIGS = REPO / "src" / "fomm" / "configs"


def bundled_clip(height: int, width: int, count: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled source ``(3, H, W)`` and the first ``count`` frames (all: None) of the bundled
    driving video ``(T, 3, H, W)``, fitted to ``height x width`` as every animation path fits them."""
    from fomm.assets import BUNDLED_DRIVING, BUNDLED_SOURCE
    from fomm.data.frames import fit_frames
    from fomm.data.media import read_driving_video, read_source_image

    source = fit_frames(read_source_image(BUNDLED_SOURCE), height, width)[0]
    return source, fit_frames(read_driving_video(BUNDLED_DRIVING)[0][:count], height, width)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    assert (REFERENCE / "io.pt").is_file(), f"reference fixtures missing from {REFERENCE}"
    return REFERENCE


@pytest.fixture(scope="session")
def reference_io(reference_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(reference_dir / "io.pt", weights_only=True)


#: The session's FOMM_CACHE (set by :func:`private_cache`).
SESSION_CACHE: list[Path] = []
#: The cache's folders of content-addressed files (a model's ONNX export, OpenVINO's compiled
#: blobs): every cache of the session shares them, so a model is exported once per session.
SHARED_CACHE_FOLDERS = ("onnx", "openvino")


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory):
    """The backends' cache (exports, `auto` choices) in a folder of the session's, never the
    user's ~/.cache/fomm; commands the tests start inherit it."""
    previous = os.environ.get("FOMM_CACHE")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Parallel workers share one cache beside their own temporary folders, so a model is
        # exported once per run, not once per worker (exports of one model wait for each other).
        folder = tmp_path_factory.getbasetemp().parent / "fomm-cache"
    else:
        folder = tmp_path_factory.mktemp("fomm-cache")
    for name in SHARED_CACHE_FOLDERS:
        (folder / name).mkdir(parents=True, exist_ok=True)
    SESSION_CACHE[:] = [folder]
    os.environ["FOMM_CACHE"] = str(folder)
    yield
    if previous is None:
        del os.environ["FOMM_CACHE"]
    else:
        os.environ["FOMM_CACHE"] = previous


def fresh_cache(folder: Path) -> Path:
    """A FOMM_CACHE at ``folder`` that remembers no `auto` choice yet but shares the session's
    exports: what a test of the choice needs, without exporting the model again (tens of seconds
    each, on CPUs where `auto` prefers an exported runtime)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in SHARED_CACHE_FOLDERS:
        link = folder / name
        if not link.exists():
            link.symlink_to(SESSION_CACHE[0] / name, target_is_directory=True)
    return folder


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Torch on one thread for the test session: the models here are tiny, and on a busy shared
    CPU two spinning OpenMP threads per process made small convolutions ~30x slower than one
    (measured: 2.5 s vs 0.05 s a training step)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def default_sigchld():
    """SIGCHLD back to what it was after every test.

    torch's DataLoader installs a process-wide SIGCHLD handler the first time it starts workers and
    never removes it; from then on every subprocess a later test runs interrupts this long-lived,
    many-threaded process with a signal when it exits. On our AMX machines the pytest process then
    died with SIGSEGV a few tests later, in three full runs out of three (gdb: si_code SI_KERNEL,
    the main thread in waitpid while another thread took the SIGCHLD: the kernel failing to deliver
    a signal, not a bad pointer of ours). Resetting the handler after each test made those runs
    pass, but a later run still crashed in the DataLoader test's own teardown, so that test now
    starts its workers in a subprocess and the pytest process never installs the handler; this
    reset stays as a guard for any test that starts workers in-process.
    """
    import signal

    before = signal.getsignal(signal.SIGCHLD)
    yield
    if signal.getsignal(signal.SIGCHLD) is not before and before is not None:
        signal.signal(signal.SIGCHLD, before)


@pytest.fixture(scope="session")
def sprites_64(tmp_path_factory) -> Path:
    """One small synthetic dataset for the whole session (8 videos of 6 frames, 64x64, half of them
    in test/): made once, read by every test that trains or evaluates on real video files."""
    from fomm.data.synthetic.writer import make_dataset

    root = tmp_path_factory.mktemp("datasets") / "sprites-64"
    make_dataset("sprites", root, videos=8, frames=6, size=64, seed=0, test_fraction=0.5, workers=1, progress=False)
    return root
