"""Subject-aware cropping (``fomm.crop``, ``fomm crop``, ``fomm animate --crop``) on real
photographs that ship with scikit-image and matplotlib, and on videos made from them with known
motion, so that where the face is on every frame is known."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import imageio.v3 as iio
import matplotlib.cbook
import numpy as np
import pytest
import skimage.data

from fomm.cli import build_parser, main
from fomm.crop import (
    DETECTORS,
    Box,
    BodyFromFaceDetector,
    HaarFaceDetector,
    crop_box,
    detect_video,
    make_detector,
    plan_segments,
    subject_crop,
)
from fomm.data.video import read_video, video_info, write_video

from .test_video_io import make_video_with_audio

# Marked by hand on the photographs (x0, y0, x1, y1 in pixels): from the eyes to the mouth,
# and the whole head (hair or cap to chin).
ASTRONAUT_FACE = Box(192, 100, 258, 155)
ASTRONAUT_HEAD = Box(150, 15, 300, 190)
HOPPER_FACE = Box(195, 175, 345, 290)
HOPPER_HEAD = Box(150, 20, 375, 345)
ASTRONAUT_SUIT_PATCH = Box(135, 350, 210, 425)  # the mission patch on her chest

# A moving portrait: the astronaut at half size on a 448x320 gray canvas.
SCALE = 0.5
CANVAS = (320, 448)


def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


def hopper() -> np.ndarray:
    return iio.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def place(image: np.ndarray, x: float, y: float, scale: float = SCALE, canvas: tuple[int, int] = CANVAS) -> np.ndarray:
    """``image`` scaled by ``scale`` with its top-left corner at (x, y) of a gray canvas."""
    move = np.float32([[scale, 0, x], [0, scale, y]])
    return cv2.warpAffine(image, move, (canvas[1], canvas[0]), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(110, 110, 110))


def moved(box: Box, x: float, y: float, scale: float = SCALE) -> Box:
    return Box(box.x0 * scale + x, box.y0 * scale + y, box.x1 * scale + x, box.y1 * scale + y)


def moving_astronaut(num_frames: int, seed: int = 0) -> tuple[np.ndarray, list[Box]]:
    """Frames of the astronaut drifting right (3 px/frame) and bobbing (8 px), with sensor noise
    and +-10% brightness flicker (what makes a detector's box jitter), and where her face is."""
    rng = np.random.default_rng(seed)
    frames, faces = [], []
    for t in range(num_frames):
        x, y = 24 + 3.0 * t, 40 + 8 * np.sin(t / 5)
        frame = place(astronaut(), x, y).astype(np.float32) * rng.uniform(0.9, 1.1)
        frames.append(np.clip(frame + rng.normal(0, 6, frame.shape), 0, 255).astype(np.uint8))
        faces.append(moved(ASTRONAUT_FACE, x, y))
    return np.stack(frames), faces


@pytest.fixture(scope="module")
def moving_video(tmp_path_factory) -> tuple[Path, list[Box]]:
    frames, faces = moving_astronaut(30)
    path = make_video_with_audio(tmp_path_factory.mktemp("crop") / "moving.mp4", frames=frames, fps=20)
    return path, faces


# ------------------------------------------------------------------------------------------
# pictures


@pytest.mark.parametrize("image, face, head", [(astronaut, ASTRONAUT_FACE, ASTRONAUT_HEAD),
                                               (hopper, HOPPER_FACE, HOPPER_HEAD)], ids=["astronaut", "hopper"])
def test_the_face_of_a_real_portrait_is_found_and_framed(image, face, head):
    picture = image()
    found, box = subject_crop(picture, HaarFaceDetector(), margin=0.6, what="portrait", subject="face")
    assert found.contains(face), found
    assert found.area < 4 * face.area  # a face, not the whole picture
    assert box.contains(head), box  # the crop keeps the hair and the chin
    assert box.width == box.height and 0 <= box.x0 and box.x1 <= picture.shape[1] and box.y1 <= picture.shape[0]


def test_a_tilted_face_is_found_by_the_turned_retries():
    tilted = cv2.warpAffine(astronaut(), cv2.getRotationMatrix2D((256, 256), 30, 1.0), (512, 512),
                            borderMode=cv2.BORDER_REPLICATE)
    centre = cv2.getRotationMatrix2D((256, 256), 30, 1.0) @ np.array([*ASTRONAUT_FACE.centre, 1.0])
    assert HaarFaceDetector(tilts=())(tilted) == []  # the cascade alone knows upright faces only
    found = HaarFaceDetector()(tilted)
    assert len(found) == 1
    assert abs(found[0].centre[0] - centre[0]) < 15 and abs(found[0].centre[1] - centre[1]) < 15


def test_no_face_is_found_in_photographs_without_people():
    detector = HaarFaceDetector()
    for name in ("rocket", "brick", "coffee", "moon"):
        picture = np.asarray(getattr(skimage.data, name)())
        picture = np.repeat(picture[:, :, None], 3, axis=2) if picture.ndim == 2 else picture
        assert detector(picture) == [], name


def test_a_body_box_is_laid_out_from_the_face():
    picture = astronaut()
    bodies = BodyFromFaceDetector()(picture)
    assert len(bodies) == 1
    body = bodies[0]
    assert body.contains(ASTRONAUT_HEAD.clipped(512, 512)) and body.contains(ASTRONAUT_SUIT_PATCH)
    assert body.y1 == 512  # a portrait: the body runs out of the frame
    # HOG, trained on whole pedestrians, finds no body in a head-and-shoulders portrait
    assert make_detector("hog-body")(hopper()) == []


def test_crop_box_is_moved_into_the_frame_and_shrunk_only_when_the_frame_is_smaller():
    near_corner = crop_box(Box(0, 0, 20, 20), width=100, height=80, margin=0.5)
    assert near_corner.pixels() == [0, 0, 40, 40]
    too_big = crop_box(Box(10, 10, 90, 70), width=100, height=80, margin=0.5)
    assert too_big.pixels() == [10, 0, 90, 80]  # centred on the subject, as large as the frame allows
    wide = crop_box(Box(40, 30, 60, 50), width=100, height=80, margin=0.0, aspect=0.5)
    assert (wide.width, wide.height) == (40, 20)


# ------------------------------------------------------------------------------------------
# videos


def test_a_segment_ends_at_a_scene_change_not_where_its_subject_moves():
    # Her face (48 px wide here) drifts 2 px a frame, 46 px in all: the original crop-video.py
    # cut it in two where its box overlapped the first by less than 0.25 IoU. Then a cut.
    offsets = [(30 + 2 * t, 40) for t in range(24)]
    frames = [place(astronaut(), *offset) for offset in offsets] + [place(hopper(), 40, 0, 0.45)] * 12
    detections = detect_video(frames, HaarFaceDetector())
    assert detections.scene_starts == [24]
    segments = plan_segments(detections, margin=0.6, min_frames=5)
    assert [(segment.start, segment.stop) for segment in segments] == [(0, 24), (24, 36)]
    first, second = segments
    assert all(first.box.contains(moved(ASTRONAUT_FACE, *offsets[t])) for t in range(24))
    assert 1.2 < first.looseness < 2  # the still crop holds her whole drift
    assert second.box.contains(moved(HOPPER_FACE, 40, 0, 0.45)) and second.looseness < 1.1
    followed = plan_segments(detections, margin=0.6, min_frames=5, follow=True)
    assert [(segment.start, segment.stop) for segment in followed] == [(0, 24), (24, 36)]
    assert [(segment.start, segment.stop) for segment in plan_segments(detections, margin=0.6, min_frames=13)] \
        == [(0, 24)]


def test_a_followed_crop_moves_with_the_face_without_jitter():
    frames, faces = moving_astronaut(40)
    detections = detect_video(frames, HaarFaceDetector())
    raw = np.array([max(boxes, key=lambda box: box.score).centre for boxes in detections.boxes])
    (segment,) = plan_segments(detections, margin=0.6, follow=True)
    assert (segment.start, segment.stop) == (0, 40)
    assert {(round(box.width, 6), round(box.height, 6)) for box in segment.boxes} == {segment.size}  # one size
    assert all(box.contains(face) for box, face in zip(segment.boxes, faces))
    corners = np.array([(box.x0, box.y0) for box in segment.boxes])
    # Jitter: the change of the crop's velocity from one frame to the next, in pixels per frame
    # per frame. The true motion's is under 0.35; the detector's own boxes jump by several.
    assert np.abs(np.diff(corners, 2, axis=0)).max() <= 0.5
    assert np.abs(np.diff(raw, 2, axis=0)).max() >= 2.0
    centres = np.array([box.centre for box in segment.boxes])
    truth = np.array([face.centre for face in faces])
    # The crop centres on the detector's box, a few pixels above the eyes-to-mouth region; that
    # offset stays the same on every frame: the crop keeps up with the motion, no lag.
    assert np.ptp(centres - truth, axis=0).max() < 2.0


def test_dry_run_prints_the_plan_and_writes_nothing(moving_video, tmp_path, capsys):
    path, faces = moving_video
    out = tmp_path / "face.mp4"
    assert main(["crop", str(path), "--out", str(out), "--follow", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert (plan["subject"], plan["detector"], plan["fps"], plan["frames"]) == ("face", "haar-face", 20.0, 30)
    (segment,) = plan["segments"]
    assert (segment["start"], segment["stop"], segment["out"]) == (0, 30, str(out))
    assert all(Box(*box).contains(face) for box, face in zip(segment["boxes"], faces))
    assert plan["left_out"] == []


def test_a_slowly_panning_face_is_one_file_with_its_frame_rate_and_audio(moving_video, tmp_path, capsys):
    path, faces = moving_video
    out = tmp_path / "face.mp4"
    assert main(["crop", str(path), "--out", str(out), "--size", "96", "--min-frames", "4"]) == 0
    # drifting 3 px a frame, her face leaves its first box within a few frames; the original
    # tool (and fomm before it tracked subjects) cut it into several files
    assert [file.name for file in tmp_path.iterdir()] == ["face.mp4"]
    info = video_info(out)
    assert (info.height, info.width, info.fps, info.has_audio, info.num_frames) == (96, 96, 20.0, True, 30)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"wrote {out}: frames 0-29 (1.5 s), crop ") and "--follow keeps it framed" in lines[0]
    assert lines[-1] == "kept 30 of 30 frames in 1 file"


def test_crop_of_an_image_at_full_resolution(tmp_path):
    source = tmp_path / "astronaut.png"
    iio.imwrite(source, astronaut())
    out = tmp_path / "face.png"
    assert main(["crop", str(source), "--out", str(out), "--size", "full"]) == 0
    cropped = iio.imread(out)
    found, box = subject_crop(astronaut(), HaarFaceDetector(), margin=0.6)
    assert cropped.shape == (box.pixels()[3] - box.pixels()[1], box.pixels()[2] - box.pixels()[0], 3)
    x0, y0, x1, y1 = box.pixels()
    np.testing.assert_array_equal(cropped, astronaut()[y0:y1, x0:x1])


def test_no_subject_is_one_line_and_exit_status_2(tmp_path, capsys):
    rocket = tmp_path / "rocket.jpg"
    iio.imwrite(rocket, skimage.data.rocket())
    assert main(["crop", str(rocket), "--out", str(tmp_path / "face.png")]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"fomm crop: error: {rocket}: no face found"
    still = write_video(tmp_path / "rocket.mp4", np.stack([skimage.data.rocket()[:256, :256]] * 3), fps=25)
    assert main(["crop", str(still), "--out", str(tmp_path / "face.mp4")]) == 2
    assert "no face found in any of its 3 frames" in capsys.readouterr().err
    assert not (tmp_path / "face.png").exists() and not (tmp_path / "face.mp4").exists()


def test_bad_options_are_refused_before_any_work(tmp_path, capsys):
    source = tmp_path / "astronaut.png"
    iio.imwrite(source, astronaut())
    assert main(["crop", str(source), "--out", str(tmp_path / "face.mp4")]) == 2  # an image gives an image
    assert "--out" in capsys.readouterr().err
    assert main(["crop", str(source), "--out", str(source)]) == 2
    assert "would destroy the input" in capsys.readouterr().err
    assert main(["crop", str(source), "--out", str(tmp_path / "f.png"), "--detector", "nonesuch"]) == 2
    assert "unknown detector 'nonesuch'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser("crop").parse_args(["crop", str(source), "--out", "x.png", "--size", "huge"])


def test_a_users_own_detector_plugs_in_by_module_and_factory(tmp_path, monkeypatch, capsys):
    """A detector the project does not bundle: scikit-image's LBP face cascade, wrapped in a
    module of the user's in the current folder, chosen with --detector module:factory (no
    PYTHONPATH: the `fomm` command does not have the current folder on its path)."""
    (tmp_path / "my_detectors.py").write_text(
        "import numpy as np\n"
        "from skimage.color import rgb2gray\n"
        "from skimage.data import lbp_frontal_face_cascade_filename\n"
        "from skimage.feature import Cascade\n"
        "from fomm.crop import Box\n\n"
        "def lbp_faces():\n"
        "    cascade = Cascade(lbp_frontal_face_cascade_filename())\n"
        "    def detect(frame):\n"
        "        found = cascade.detect_multi_scale(rgb2gray(frame), scale_factor=1.2, step_ratio=1,\n"
        "                                           min_size=(60, 60), max_size=(200, 200))\n"
        "        return [Box(d['c'], d['r'], d['c'] + d['width'], d['r'] + d['height']) for d in found]\n"
        "    return detect\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry not in ("", ".", str(tmp_path))])
    path_before = list(sys.path)
    source = tmp_path / "astronaut.png"
    iio.imwrite(source, astronaut())
    assert main(["crop", str(source), "--out", str(tmp_path / "f.png"), "--detector", "my_detectors:lbp_faces",
                 "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["detector"] == "my_detectors:lbp_faces"
    assert Box(*plan["found"]).iou(ASTRONAUT_FACE) > 0.3
    assert Box(*plan["box"]).contains(ASTRONAUT_FACE)
    assert "my_detectors" not in DETECTORS
    assert sys.path == path_before  # the current folder was searched for that import only
    sys.modules.pop("my_detectors", None)


# ------------------------------------------------------------------------------------------
# fomm animate --crop


def test_animate_crop_option_values():
    parse = build_parser("animate").parse_args
    assert parse(["animate"]).crop == "none"
    assert parse(["animate", "--crop"]).crop == "center"  # the old flag keeps its meaning
    assert parse(["animate", "--crop", "face", "--audio"]).crop == "face"
    with pytest.raises(SystemExit):
        parse(["animate", "--crop", "sideways"])


def test_animate_with_a_face_crop_end_to_end(tmp_path):
    source = tmp_path / "astronaut.png"
    iio.imwrite(source, astronaut())
    frames, _ = moving_astronaut(6)
    driving = write_video(tmp_path / "driving.mp4", frames, fps=25)
    out, panels = tmp_path / "out.mp4", tmp_path / "side.mp4"
    assert main(["animate", "--source", str(source), "--driving", str(driving), "--crop", "face",
                 "--out", str(out), "--side-by-side", str(panels), "--device", "cpu"]) == 0
    result = read_video(out)
    assert len(result) == 6
    size = result.shape[1]
    first = read_video(panels)[0]
    border = (first.shape[0] - size) // 2  # the config's draw_border frames each panel
    source_panel = first[border:border + size, border:border + size].astype(np.float32)
    # the side-by-side shows the crop the model was given: the face, not the whole picture
    _, box = subject_crop(astronaut(), HaarFaceDetector(), margin=0.6)
    x0, y0, x1, y1 = box.pixels()
    face_crop = cv2.resize(astronaut()[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)
    whole = cv2.resize(astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    error_crop = np.abs(source_panel - face_crop).mean()
    assert error_crop < 12 and error_crop < 0.5 * np.abs(source_panel - whole).mean()


def test_animate_face_crop_without_a_face_says_which_input(tmp_path, capsys):
    rocket = tmp_path / "rocket.png"
    iio.imwrite(rocket, skimage.data.rocket())
    assert main(["animate", "--source", str(rocket), "--crop", "face", "--out", str(tmp_path / "o.mp4")]) == 2
    assert f"--source {rocket}: no face found" in capsys.readouterr().err
