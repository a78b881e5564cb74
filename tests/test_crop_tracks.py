"""One subject, one track: ``fomm crop`` follows each face through a video (boxes of one face in one
frame merged, a part of it found alone kept in its track, two faces kept apart), says which frames
it leaves out and why, and ``fomm.crop.driving_crop`` frames a driving video's face in the
proportion ``source_crop`` frames the source's. On photographs that ship with scikit-image and
matplotlib, moved across canvases with known motion, and on videos written to real files."""

from __future__ import annotations

import functools

import hashlib

import cv2
import numpy as np
import pytest

from fomm.cli import main
from fomm.crop import (
    Box,
    HaarFaceDetector,
    SubjectDetector,
    crop_box,
    crop_to_subject,
    detect_video,
    driving_crop,
    left_out_frames,
    merge_duplicates,
    plan_segments,
    source_crop,
)
from fomm.data.video import video_info, write_video

from .test_crop import ASTRONAUT_FACE, HOPPER_FACE, astronaut, hopper, moved, moving_astronaut, place


class Remembering:
    """A real detector, run once per distinct frame: several plans are made from the same frames
    here, and a video holding a pose repeats a frame. Returns exactly what the detector does."""

    def __init__(self, detector: SubjectDetector) -> None:
        self.detector = detector
        self.answers: dict[bytes, list[Box]] = {}

    def __call__(self, frame: np.ndarray) -> list[Box]:
        key = hashlib.sha1(np.ascontiguousarray(frame).tobytes()).digest()
        if key not in self.answers:
            self.answers[key] = self.detector(frame)
        return self.answers[key]


def spans(segments) -> list[tuple[int, int]]:
    return [(segment.start, segment.stop) for segment in segments]


# ------------------------------------------------------------------------------------------
# one track per subject


def test_boxes_of_one_face_in_one_frame_are_merged_into_the_face():
    face = Box(114, 106, 349, 341, score=40)
    eye_and_brow = Box(210, 99, 330, 219, score=44)  # what the Haar cascade finds inside a close-up
    other_face = Box(360, 100, 470, 210, score=20)
    assert merge_duplicates([eye_and_brow, face, other_face]) == [Box(114, 106, 349, 341, score=44), other_face]
    nudged = Box(118, 110, 352, 344, score=30)  # the same face found twice, a few pixels apart
    assert merge_duplicates([face, nudged]) == [face]
    beside = Box(300, 106, 535, 341)  # overlapping a little: another face
    assert set(merge_duplicates([face, beside])) == {face, beside}


class FacesAndEyes:
    """A user's detector that reports eyes as well as faces (OpenCV's upright frontal-face and eye
    cascades, both bundled): the eyes are boxes inside the face's, and when the head tilts past
    what the face cascade knows, the eyes are all it finds."""

    def __init__(self) -> None:
        self.faces = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        self.eyes = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_eye.xml")

    def __call__(self, frame: np.ndarray) -> list[Box]:
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        found = [*self.faces.detectMultiScale(gray, 1.1, 4, minSize=(24, 24)),
                 *self.eyes.detectMultiScale(gray, 1.1, 4, minSize=(8, 8))]
        return [Box(float(x), float(y), float(x + w), float(y + h)) for x, y, w, h in found]


def tilted_astronaut(degrees: float) -> np.ndarray:
    """The astronaut at 0.6 scale, her head turned by ``degrees`` about its centre, in 320x240."""
    turn = cv2.getRotationMatrix2D((225, 128), degrees, 0.6)
    turn[:, 2] += (160 - 225, 120 - 128)
    return cv2.warpAffine(astronaut(), turn, (320, 240), borderMode=cv2.BORDER_REFLECT)


def test_a_face_found_only_in_part_for_a_while_stays_one_track():
    # Her head tilts to 30 degrees and back, 6 degrees a frame, and holds the tilt for 12 frames
    # (more than the 10 a subject may be missed), on which only her eyes are found.
    angles = [0] * 4 + [6, 12, 18, 24] + [30] * 12 + [24, 18, 12, 6] + [0] * 4
    detections = detect_video([tilted_astronaut(angle) for angle in angles], Remembering(FacesAndEyes()))
    assert detections.scene_starts == []
    face = detections.boxes[0]
    assert len(face) == 1 and face[0].width > 50  # face and eyes merged into the face
    only_eyes = [t for t, boxes in enumerate(detections.boxes) if boxes and max(box.width for box in boxes) < 30]
    assert only_eyes == list(range(8, 20)), only_eyes
    assert all(eye.inside_fraction(face[0]) > 0.9 for eye in detections.boxes[12])
    for follow in (False, True):
        (segment,) = plan_segments(detections, margin=0.6, min_frames=10, follow=follow)
        assert spans([segment]) == [(0, 28)]
        assert segment.subject.width > 50 and segment.box_at(12).contains(face[0])
    assert left_out_frames(detections, [segment]) == []


def place_two(x: float) -> np.ndarray:
    """The astronaut (half size) and Grace Hopper (0.35) side by side, both moved ``x`` pixels."""
    canvas = place(astronaut(), 10 + x, 40)
    move = np.float32([[0.35, 0, 262 + x], [0, 0.35, 60]])
    return cv2.warpAffine(hopper(), move, (canvas.shape[1], canvas.shape[0]), dst=canvas,
                          flags=cv2.INTER_AREA, borderMode=cv2.BORDER_TRANSPARENT)


def test_two_faces_panning_side_by_side_are_two_tracks_one_each():
    offsets = [1.5 * t for t in range(18)]
    detections = detect_video([place_two(x) for x in offsets], Remembering(HaarFaceDetector()))
    for follow in (False, True):
        segments = plan_segments(detections, margin=0.6, min_frames=5, follow=follow)
        assert spans(segments) == [(0, 18), (0, 18)], segments
        hers, his = sorted(segments, key=lambda segment: segment.subject.x0)
        for t, x in enumerate(offsets):
            her_face, hopper_face = moved(ASTRONAUT_FACE, 10 + x, 40), moved(HOPPER_FACE, 262 + x, 60, 0.35)
            assert hers.box_at(t).contains(her_face) and not hers.subject.contains(hopper_face)
            assert his.box_at(t).contains(hopper_face) and not his.subject.contains(her_face)


def test_a_body_clip_says_which_frames_it_left_out_and_why(tmp_path, capsys):
    # She stands for 16 frames, is gone for 14, and passes through for 4 (fewer than --min-frames).
    person = [place(astronaut(), 40 + t, 20, 0.4, (240, 320)) for t in range(16)]
    empty = [np.full((240, 320, 3), 110, np.uint8)] * 14
    passing = [place(astronaut(), 150 + 4 * t, 20, 0.4, (240, 320)) for t in range(4)]
    clip = write_video(tmp_path / "person.mp4", person + empty + passing, fps=25)
    out = tmp_path / "body.mp4"
    assert main(["crop", str(clip), "--out", str(out), "--subject", "body", "--size", "64"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert video_info(out).num_frames == 16
    assert lines[-1] == ("kept 16 of 34 frames in 1 file; left out frames 16-33 (0.7 s): a body found on 4 of "
                         "them, too briefly or too rarely to be kept (see --min-frames, now 10)")
    assert main(["crop", str(clip), "--out", str(out), "--subject", "body", "--dry-run"]) == 0
    assert '"left_out": [\n    {\n      "start": 16,\n      "stop": 34,\n      "found_on": 4' in capsys.readouterr().out


# ------------------------------------------------------------------------------------------
# fomm animate: source and driving framed alike


@pytest.fixture(scope="module")
def roaming_face() -> tuple[np.ndarray, list[Box], Remembering]:
    """24 frames of her face (48 px box) roaming 70 px across a 448x320 canvas, with noise."""
    frames, faces = moving_astronaut(24)
    return frames, faces, Remembering(HaarFaceDetector())


def test_the_driving_crop_frames_the_face_as_the_source_crop_does(roaming_face):
    frames, faces, detector = roaming_face
    source = astronaut()
    source_box = source_crop(source, "face")
    (source_face,) = HaarFaceDetector()(source)
    proportion = source_box.width / source_face.width

    driving = driving_crop(frames, "face", detector=detector)
    assert len(driving) == 24 and len(driving.boxes) == 24  # she roams: the crop moves
    found = [max(detector(frame), key=lambda box: box.score) for frame in frames]
    for t, face in enumerate(faces):
        box = driving.box_at(t)
        # at a fractional position, x0 + 114 - x0 may read 114.00000000000001: the cut rounds it
        assert box.contains(face) and (box.height, box.width) == pytest.approx(driving.size, abs=1e-9)
        assert box.width / found[t].width == pytest.approx(proportion, rel=0.12)
    # the union of her boxes over the clip frames her more than twice as loosely
    union = crop_box(functools.reduce(Box.union, found), frames.shape[2], frames.shape[1], margin=0.6)
    assert union.width / np.median([box.width for box in found]) > 2 * proportion
    # it moves only as far as she goes, and smoothly (velocity changes under 1 px per frame)
    corners = np.array([(box.x0, box.y0) for box in driving.boxes])
    travel = np.array([face.centre for face in faces])
    assert np.abs(np.diff(corners, axis=0)).sum() < np.abs(np.diff(travel, axis=0)).sum()
    assert np.abs(np.diff(corners, 2, axis=0)).max() < 1.0


def test_a_still_face_gets_one_still_driving_crop_the_same_as_its_source_crop():
    rng = np.random.default_rng(1)
    still = place(astronaut(), 120, 30)
    frames = np.stack([np.clip(still + rng.normal(0, 4, still.shape), 0, 255).astype(np.uint8) for _ in range(6)])
    detector = Remembering(HaarFaceDetector())
    driving = driving_crop(frames, "face", detector=detector)
    assert driving.boxes == () and (driving.start, driving.stop) == (0, 6)
    assert driving.box.contains(moved(ASTRONAUT_FACE, 120, 30))
    source = source_crop(frames[0], "face", detector=detector)
    assert abs(driving.box.width - source.width) <= 0.05 * source.width  # the median face, the same margin
    cropped = crop_to_subject(frames, "face", detector=detector)
    x0, y0, x1, y1 = driving.box.pixels()
    np.testing.assert_array_equal(cropped, frames[:, y0:y1, x0:x1])
    x0, y0, x1, y1 = source.pixels()  # one frame: a source image's crop
    np.testing.assert_array_equal(crop_to_subject(frames[:1], "face", detector=detector), frames[:1, y0:y1, x0:x1])
