"""``fomm crop --detector module:factory`` takes only what makes a detector, and a detector that
misbehaves (raises, returns tuples, inverted boxes, boxes outside the frame) stops the work with
one line naming it, before anything is cropped from a bad box. Each case runs the command as a
user would (``fomm.cli.main``) on a real photograph, with detectors written to a module in the
current folder, most of them built on the bundled Haar cascade so that they misbehave only where
a face is really found (after the blank frame every detector is tried on first)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import imageio.v3 as iio
import pytest
import skimage.data

from fomm.cli import main
from fomm.crop import DetectorError, make_detector


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch) -> Path:
    """The current folder, holding a portrait; it is not on sys.path (as for the `fomm` command),
    and the modules the test writes there are forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry not in ("", ".", str(tmp_path))])
    iio.imwrite(tmp_path / "astronaut.png", skimage.data.astronaut())
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("user_"):
            del sys.modules[name]


def write_module(folder: Path, name: str, source: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(source))


def crop_with(detector: str, capsys, out: str = "face.png") -> tuple[int, list[str]]:
    """Exit status of `fomm crop astronaut.png --out OUT --detector DETECTOR` and its stderr lines."""
    try:
        status = main(["crop", "astronaut.png", "--out", out, "--detector", detector])
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    return status, capsys.readouterr().err.strip().splitlines()


# A detector module of the user's, on the bundled cascade; each factory misbehaves in one way.
BUGGY_DETECTORS = """
    from fomm.crop import Box, HaarFaceDetector

    def raises():
        faces = HaarFaceDetector()
        def detect(frame):
            if faces(frame):
                raise RuntimeError("CUDA out of memory")
            return []
        return detect

    def tuples():
        faces = HaarFaceDetector()
        return lambda frame: [(box.x0, box.y0, box.x1, box.y1) for box in faces(frame)]

    def inverted():
        faces = HaarFaceDetector()
        return lambda frame: [Box(box.x1, box.y1, box.x0, box.y0) for box in faces(frame)]

    def outside():
        faces = HaarFaceDetector()
        return lambda frame: [Box(box.x0 + frame.shape[1], box.y0, box.x1 + frame.shape[1], box.y1)
                              for box in faces(frame)]

    def a_set():
        faces = HaarFaceDetector()
        return lambda frame: set(faces(frame))

    def not_callable():
        return HaarFaceDetector().tilts

    def fails_to_load():
        raise OSError("weights.onnx not found")

    def needs_a_path(path):
        return HaarFaceDetector()
"""


@pytest.mark.parametrize("factory, says", [
    ("raises", "failed on a 512x512 frame: RuntimeError: CUDA out of memory"),
    ("tuples", "returned (177.0, 66.0, 272.0, 161.0) for a 512x512 frame: not a fomm.crop.Box"),
    ("inverted", "x1 must be above x0 and y1 above y0"),
    ("outside", "it lies wholly outside the frame"),
    ("a_set", "returned set(), not a list of fomm.crop.Box"),  # already on the blank frame
    ("not_callable", "returned (20.0, -20.0, 40.0, -40.0), not a detector"),
    ("fails_to_load", "making it failed: OSError: weights.onnx not found"),
    ("needs_a_path", "needs arguments"),
])
def test_a_misbehaving_detector_is_one_line_naming_it_and_nothing_is_written(workdir, capsys, factory, says):
    write_module(workdir, "user_buggy", BUGGY_DETECTORS)
    status, errors = crop_with(f"user_buggy:{factory}", capsys)
    assert status == 2 and len(errors) == 1, errors
    assert errors[0].startswith(f"fomm crop: error: detector 'user_buggy:{factory}'") and says in errors[0], errors
    assert not (workdir / "face.png").exists()


def test_a_bad_box_in_the_middle_of_a_video_stops_it_with_one_line(workdir, capsys):
    write_module(workdir, "user_buggy", BUGGY_DETECTORS)
    from fomm.data.video import write_video

    frames = [skimage.data.rocket()[:256, :256]] * 3 + [skimage.data.astronaut()[:256, 96:352]] * 3
    write_video(workdir / "clip.mp4", frames, fps=10)
    status = main(["crop", "clip.mp4", "--out", "face.mp4", "--detector", "user_buggy:inverted"])
    errors = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and errors[-1].startswith("fomm crop: error: detector 'user_buggy:inverted' returned Box(")
    assert len([line for line in errors if "error" in line]) == 1
    assert sorted(path.name for path in workdir.iterdir()) == ["astronaut.png", "clip.mp4", "user_buggy.py"]


def test_only_a_factory_defined_in_the_named_module_is_called(workdir, capsys):
    """`os:system` (a builtin re-exported by os) and `builtins:exit` were called before; a function
    a user module only imports is refused just the same, and is not called (it would leave a file)."""
    write_module(workdir, "user_helpers", """
        from pathlib import Path

        def leave_a_mark():
            Path("called").write_text("the factory ran")
            return lambda frame: []
    """)
    write_module(workdir, "user_reexports", "from user_helpers import leave_a_mark\n")
    cases = {
        "os:system": "system is a builtin_function_or_method, not a function or class",
        "builtins:exit": "exit is a Quitter, not a function or class",
        "user_reexports:leave_a_mark": "leave_a_mark is not defined in user_reexports (it comes from user_helpers)",
        ":f": "expected module:factory",
        "..:x": "expected module:factory",
        "user_helpers:": "expected module:factory",
        "user_helpers:nothing_here": "user_helpers has no 'nothing_here'",
        "user_nowhere:faces": "cannot import user_nowhere",
    }
    for name, says in cases.items():
        status, errors = crop_with(name, capsys)
        assert status == 2 and len(errors) == 1 and says in errors[0], (name, errors)
    assert not (workdir / "called").exists() and not (workdir / "face.png").exists()
    # the same factory named where it is defined is a detector (it finds nothing here)
    status, errors = crop_with("user_helpers:leave_a_mark", capsys)
    assert (status, errors) == (2, ["fomm crop: error: astronaut.png: no face found"])
    assert (workdir / "called").exists()


def test_a_module_that_fails_to_import_is_one_line(workdir, capsys):
    write_module(workdir, "user_broken", "import numpy as np\nraise SystemExit(0)\n")
    status, errors = crop_with("user_broken:faces", capsys)
    assert status == 2 and errors == ["fomm crop: error: detector 'user_broken:faces': importing user_broken failed: "
                                      "SystemExit: 0"]


def test_make_detector_checks_the_bundled_ones_too():
    detector = make_detector("haar-face")
    assert detector.name == "haar-face" and detector(skimage.data.astronaut())  # a face: a list of Box
    with pytest.raises(DetectorError, match="'nonesuch:x': cannot import nonesuch"):
        make_detector("nonesuch:x")


def test_an_output_size_beyond_any_model_is_refused_before_any_work(workdir, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["crop", "astronaut.png", "--out", "face.png", "--size", "100000"])
    errors = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(errors) == 1
    assert "argument --size: 100000 is above 4096 pixels" in errors[0]
    assert main(["crop", "astronaut.png", "--out", "face.png", "--size", "4096", "--dry-run"]) == 0
