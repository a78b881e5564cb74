"""No hang and nothing left behind when a stage of a command fails for real: an output on a full
disk, on a read-only mount or past the file-size limit, a driving video whose data breaks off in
the middle, an engine refused, an export to a read-only folder. Each ends within seconds with one
line naming the file or cause and exit status 2; no output, no staged temporary survives.

Full and read-only disks are real tmpfs mounts (root only: elsewhere these tests say why they
skip); the file-size limit is a real ``RLIMIT_FSIZE`` in a child process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from fomm.assets import BUNDLED_DRIVING
from fomm.cli import main

EXACT = ["--precision", "fp32", "--backend", "torch"]


@contextmanager
def mounted(folder: Path, options: str):
    """A tmpfs mounted at ``folder`` with ``options`` (``size=...``, ``ro``) for the block."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (as CI runs the tests)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@contextmanager
def full_disk(folder: Path):
    """A 64 KiB tmpfs with 60 KiB taken: room for a few blocks, not for a video."""
    with mounted(folder, "size=64k") as disk:
        (disk / "filler").write_bytes(bytes(60 * 1024))
        yield disk


def finished_within(seconds: float, argv: list[str]) -> int:
    """``fomm`` with ``argv`` in this process; fails the test if it has not returned after
    ``seconds`` (a hang)."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(main(argv)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"fomm {' '.join(argv)} still running after {seconds} s: a hang"
    return result[0]


def one_error_line(capsys, *expected: str) -> str:
    lines = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines()
             if line.strip() and not line.startswith("animating")]  # the progress bar
    assert len(lines) == 1 and lines[0].startswith("fomm "), lines
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def nothing_left(*folders: Path, keep: tuple[str, ...] = ("filler",)) -> None:
    for folder in folders:
        assert sorted(path.name for path in folder.iterdir() if path.name not in keep) == [], folder


@pytest.mark.parametrize("which", ["--out", "--gif", "--side-by-side"])
def test_an_output_on_a_full_disk_stops_everything_in_one_line(which, tmp_path, capsys):
    """Whichever encoder finds the disk full, every output is abandoned: the others (on a roomy
    disk) are not left half-made either."""
    roomy = tmp_path / "roomy"
    roomy.mkdir()
    with full_disk(tmp_path / "full") as disk:
        outputs = {"--out": roomy / "result.mp4", "--gif": roomy / "result.gif", "--side-by-side": roomy / "side.mp4"}
        outputs[which] = disk / Path(outputs[which]).name
        argv = ["animate", *EXACT, *(part for option, path in outputs.items() for part in (option, str(path)))]
        assert finished_within(60, argv) == 2
        one_error_line(capsys, str(outputs[which]), "No space left on device")
        nothing_left(roomy, disk)


def test_an_output_on_a_read_only_mount_is_one_line(tmp_path, capsys):
    with mounted(tmp_path / "ro", "size=1m,ro") as read_only:
        assert finished_within(60, ["animate", *EXACT, "--out", str(read_only / "result.mp4")]) == 2
        one_error_line(capsys, str(read_only / "result.mp4"), "Read-only file system")


def test_export_to_a_read_only_mount_is_one_line_and_leaves_no_folder(tmp_path, capsys):
    with mounted(tmp_path / "ro", "size=1m,ro") as read_only:
        assert finished_within(60, ["export", "--out", str(read_only / "onnx"), "--no-check"]) == 2
        one_error_line(capsys, "onnx", "Read-only file system")
    roomy = tmp_path / "roomy"
    roomy.mkdir()
    with full_disk(tmp_path / "full") as disk:
        assert finished_within(120, ["export", "--out", str(disk / "onnx"), "--no-check"]) == 2
        one_error_line(capsys, "No space left on device")
        nothing_left(disk)


#: The child limits its own file sizes, then runs the command: a ``preexec_fn`` would fork this
#: many-threaded test process, which can deadlock the child before it starts.
LIMITED = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192)); "
           "sys.argv = ['fomm', *sys.argv[1:]]; runpy.run_module('fomm.cli', run_name='__main__')")


def test_past_the_file_size_limit_is_one_line(tmp_path):
    """RLIMIT_FSIZE: writes past it fail with EFBIG (Python ignores SIGXFSZ)."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", LIMITED, "animate", *EXACT, "--out", str(tmp_path / "big.mp4")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and time.monotonic() - started < 60
    lines = [line for line in done.stderr.replace("\r", "\n").splitlines() if line.strip() and "animating" not in line]
    assert lines == [f"fomm animate: error: cannot write {tmp_path / 'big.mp4'}: File too large"]
    nothing_left(tmp_path)


def test_a_driving_video_that_breaks_off_mid_file_stops_the_outputs(tmp_path, capsys):
    """The decoder fails after the encoders have frames: every stage stops, nothing is kept."""
    data = bytearray(BUNDLED_DRIVING.read_bytes())
    start, stop = int(len(data) * 0.3), int(len(data) * 0.7)
    data[start:stop] = bytes(stop - start)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    argv = ["animate", *EXACT, "--driving", str(broken), "--out", str(out / "result.mp4"), "--gif", str(out / "r.gif")]
    assert finished_within(60, argv) == 2
    one_error_line(capsys, "broken.mp4", "corrupt video data")
    nothing_left(out)


def test_an_engine_that_cannot_run_is_refused_before_any_work(tmp_path, capsys):
    started = time.monotonic()
    argv = ["animate", "--backend", "onnxruntime", "--precision", "fp16", "--out", str(tmp_path / "r.mp4")]
    assert finished_within(60, argv) == 2
    one_error_line(capsys, "onnxruntime", "fp32 only")
    assert time.monotonic() - started < 20  # refused before exporting anything
    nothing_left(tmp_path)


def test_training_on_a_disk_that_fills_keeps_the_last_checkpoint(tmp_path, capsys, sprites_64):
    """The log folder's disk fills between two checkpoints: one line naming the checkpoint, exit 2,
    and the last good checkpoint byte for byte as it was."""
    import copy

    import yaml

    from .train_helpers import TINY_CONFIG

    config = copy.deepcopy(TINY_CONFIG)
    config["dataset_params"] = {"root_dir": str(sprites_64), "frame_shape": [32, 32, 3]}
    config["train_params"].update(num_epochs=50)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    common = ["--config", str(tmp_path / "tiny.yaml"), "--no-progress", "--threads", "1", "--device", "cpu"]
    with mounted(tmp_path / "log", "size=4m") as disk:
        assert main(["train", *common, "--log-dir", str(disk / "run"), "--max-steps", "2"]) == 0
        checkpoint = disk / "run" / "checkpoint.pth.tar"
        before = checkpoint.read_bytes()
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(bytes(max(0, free - 16 * 1024)))
        capsys.readouterr()
        assert finished_within(60, ["train", *common, "--checkpoint", str(checkpoint), "--max-steps", "50"]) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert errors == [f"fomm train: error: cannot write {checkpoint}: No space left on device"]
        assert checkpoint.read_bytes() == before
        assert not [path for path in checkpoint.parent.iterdir() if ".partial-" in path.name]
