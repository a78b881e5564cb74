"""Atomic writes: complete files or none, the previous version kept on failure, and temporaries
of dead writers swept on the next write."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from fomm.errors import OutputPathError
from fomm.files import (FolderLock, atomic_path, atomic_torch_save, require_free_space, staged_outputs,
                        sweep_stale_temporaries, write_text_atomic)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = write_text_atomic(tmp_path / "notes.txt", "first")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half of the seco")
            raise RuntimeError("disk full")
    assert target.read_text() == "first"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


def test_stale_temporaries_of_dead_writers_are_swept_and_live_ones_kept(tmp_path):
    target = tmp_path / "checkpoint.pth.tar"
    dead = tmp_path / f".checkpoint.pth.partial-{_dead_pid()}-0123abcd.tar"
    live = tmp_path / f".checkpoint.pth.partial-{os.getppid()}-4567abcd.tar"  # our parent: alive
    other = tmp_path / f".other.pth.partial-{_dead_pid()}-89abcdef.tar"  # another target's: not ours to judge
    for path in (dead, live, other):
        path.write_bytes(b"x" * 100)
    atomic_torch_save({"step": torch.tensor(1)}, target)
    assert torch.load(target, weights_only=True)["step"].item() == 1
    assert not dead.exists() and live.exists() and other.exists()
    assert sweep_stale_temporaries(tmp_path / "other.pth.tar") == [other]


def test_files_are_written_with_the_umask_not_0600(tmp_path):
    previous = os.umask(0o022)
    try:
        path = atomic_torch_save({"a": torch.zeros(1)}, tmp_path / "model.pt")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644


def test_staged_outputs_are_all_written_or_none(tmp_path):
    finals = [tmp_path / "result.mp4", tmp_path / "result.gif", tmp_path / "panels.mp4"]
    (tmp_path / "result.mp4").write_text("previous result")
    with pytest.raises(OSError):
        with staged_outputs(finals) as staged:
            staged[finals[0]].write_text("new result")
            staged[finals[1]].write_text("new gif")
            raise OSError("No space left on device")  # while writing the third
    assert (tmp_path / "result.mp4").read_text() == "previous result"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["result.mp4"]
    with staged_outputs(finals) as staged:
        for path in finals:
            staged[path].write_text(path.name)
    assert [path.read_text() for path in finals] == ["result.mp4", "result.gif", "panels.mp4"]
    assert len(list(tmp_path.iterdir())) == 3


@pytest.fixture()
def small_filesystem(tmp_path):
    """A 64 KiB tmpfs (root only: skipped where mounting is not allowed)."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_is_a_one_line_error_and_keeps_the_previous_file(small_filesystem):
    target = atomic_torch_save({"small": torch.zeros(10)}, small_filesystem / "checkpoint.pth.tar")
    before = target.read_bytes()
    with pytest.raises(OutputPathError, match="No space left on device") as error:
        atomic_torch_save({"big": torch.zeros(100_000)}, target)
    assert str(target) in str(error.value) and "\n" not in str(error.value)
    assert target.read_bytes() == before
    assert [path.name for path in small_filesystem.iterdir()] == ["checkpoint.pth.tar"]


def test_a_read_only_filesystem_is_a_one_line_error(small_filesystem):
    subprocess.run(["mount", "-o", "remount,ro", str(small_filesystem)], check=True)
    with pytest.raises(OutputPathError, match="Read-only file system"):
        write_text_atomic(small_filesystem / "notes.txt", "hello")


@pytest.mark.parametrize("name", ["result.mp4", "result.gif"])
def test_a_video_on_a_full_disk_is_a_one_line_error_naming_it(small_filesystem, name):
    import numpy as np

    from fomm.data.video import write_video
    frames = np.random.default_rng(0).integers(0, 255, (30, 96, 96, 3), dtype=np.uint8)  # noise: ~800 KB
    with pytest.raises(OutputPathError, match="No space left on device") as error:
        write_video(small_filesystem / name, frames, fps=10)
    assert f"cannot write {small_filesystem / name}:" in str(error.value)
    assert list(small_filesystem.iterdir()) == []


def test_require_free_space_refuses_what_the_disk_cannot_take(tmp_path):
    import errno

    require_free_space(tmp_path, 1)
    with pytest.raises(OSError, match=r"No space left on device \(.* MiB needed") as refused:
        require_free_space(tmp_path, 2 ** 62)
    assert refused.value.errno == errno.ENOSPC


HOLD_LOCK = """
import sys, time
from fomm.files import FolderLock
with FolderLock(sys.argv[1], "being exported"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(folder, seconds: float) -> subprocess.Popen:
    """Another process holding ``folder``'s lock for ``seconds``; returns once it holds it."""
    process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder), str(seconds)], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_waiting_lock_gives_up_on_a_stuck_holder_with_one_line_naming_it(tmp_path):
    holder = _holder(tmp_path / "export.lock", 60)
    try:
        started = time.monotonic()
        with pytest.raises(OutputPathError, match=f"being exported by pid {holder.pid} for 1 s.*stop it"):
            with FolderLock(tmp_path / "export.lock", "being exported", wait=True, wait_seconds=1.0):
                pass
        assert 1.0 <= time.monotonic() - started < 10
    finally:
        holder.kill()
        holder.communicate()  # waits, and closes its pipe


def test_a_waiting_lock_is_taken_when_its_holder_lets_go(tmp_path):
    holder = _holder(tmp_path / "export.lock", 1.0)
    try:
        with FolderLock(tmp_path / "export.lock", "being exported", wait=True, wait_seconds=30.0):
            assert holder.wait(timeout=30) == 0  # it finished first, then this process got the lock
    finally:
        holder.kill()
        holder.communicate()  # waits, and closes its pipe
