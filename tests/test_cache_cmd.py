"""`fomm cache`: what a real export, OpenVINO's compiled blobs and `auto`'s choices put in the
cache is listed, and `--clear` removes it, leaving an export another process is writing."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

import fomm
from fomm.backends.cache import exported_files, read_choice, write_choice
from fomm.backends.openvino_engine import OpenVinoEngine, openvino_available
from fomm.cli import main
from fomm.files import FolderLock

from .cli_runner import run_fomm

REFERENCE = Path(__file__).resolve().parent / "data" / "fomm-reference"


@pytest.fixture(scope="module")
def made_cache(tmp_path_factory) -> Path:
    """A cache holding the reference model's export (made once: ~20 s), one `auto` choice and,
    where OpenVINO is installed, its compiled blobs."""
    cache = tmp_path_factory.mktemp("made-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FOMM_CACHE", str(cache))
        model = fomm.load_checkpoint(REFERENCE / "checkpoint.pth.tar", config=REFERENCE / "config.yaml")
        files = exported_files(model)
        write_choice("a model | this machine", {"backend": "torch", "precision": "fp32"})
        if openvino_available():
            OpenVinoEngine(model, files, "fp32", threads=1, blob_cache=cache / "openvino")
            assert list((cache / "openvino").iterdir())
    return cache


@pytest.fixture
def filled_cache(made_cache, tmp_path, monkeypatch) -> Path:
    """A copy of ``made_cache`` as this test's private FOMM_CACHE (never the session's: clearing
    that would pull exports from under other tests)."""
    cache = shutil.copytree(made_cache, tmp_path / "cache")
    monkeypatch.setenv("FOMM_CACHE", str(cache))
    return cache


def test_an_empty_cache_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FOMM_CACHE", str(tmp_path / "never-made"))
    assert main(["cache"]) == 0
    assert "holds nothing" in capsys.readouterr().out
    assert main(["cache", "--clear"]) == 0
    assert not (tmp_path / "never-made").exists()


def test_cache_lists_then_clears_what_runs_put_there(filled_cache, capsys):
    export = next(path for path in (filled_cache / "onnx").iterdir() if not path.name.endswith(".lock"))
    assert main(["cache"]) == 0
    listing = capsys.readouterr().out
    assert str(filled_cache) in listing and f"{export.name}: fomm" in listing
    assert "1 `auto` choice(s)" in listing and "total" in listing
    if openvino_available():
        assert "OpenVINO compiled blob(s)" in listing

    # Nothing is a day old yet.
    assert main(["cache", "--clear", "--older-than", "1"]) == 0
    assert "freed 0.0 MiB" in capsys.readouterr().out
    assert (export / "render.onnx").is_file() and read_choice("a model | this machine") is not None

    # An export another holder is writing stays; everything else goes.
    with FolderLock(export.parent / f"{export.name}.lock", "being exported"):
        assert main(["cache", "--clear"]) == 0
        out = capsys.readouterr().out
    assert f"left {export.name}" in out and (export / "render.onnx").is_file()
    assert read_choice("a model | this machine") is None and not (filled_cache / "openvino").exists()

    assert main(["cache", "--clear"]) == 0
    assert "freed" in capsys.readouterr().out
    assert list((filled_cache / "onnx").iterdir()) == []
    assert main(["cache"]) == 0 and "holds nothing" in capsys.readouterr().out


def _age(path: Path, days: float) -> None:
    then = time.time() - days * 86400
    for file in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(file, (then, then))


def test_older_than_removes_only_what_has_not_changed_for_that_long(filled_cache, capsys):
    export = next(path for path in (filled_cache / "onnx").iterdir() if not path.name.endswith(".lock"))
    _age(export, 40)
    blobs = sorted((filled_cache / "openvino").iterdir()) if openvino_available() else []
    if blobs:
        _age(blobs[0], 40)
    assert main(["cache", "--clear", "--older-than", "30"]) == 0
    assert "freed" in capsys.readouterr().out
    assert not export.exists() and read_choice("a model | this machine") is not None
    if blobs:  # each compiled blob is judged by its own age
        assert not blobs[0].exists() and all(blob.exists() for blob in blobs[1:])


@pytest.mark.parametrize("arguments, named", [(["--older-than", "2"], "--clear"),
                                              (["--clear", "--older-than", "-1"], "--older-than"),
                                              (["--clear", "--older-than", "soon"], "--older-than")])
def test_bad_cache_options_are_one_line_and_remove_nothing(filled_cache, arguments, named):
    before = sorted(path.relative_to(filled_cache) for path in filled_cache.rglob("*"))
    finished = run_fomm("cache", *arguments)
    assert finished.returncode == 2 and finished.stdout == ""
    assert named in finished.stderr and len(finished.stderr.strip().splitlines()) == 1, finished.stderr
    assert sorted(path.relative_to(filled_cache) for path in filled_cache.rglob("*")) == before
