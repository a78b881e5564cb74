"""Finding the subject of a picture or a video (a face or a body) and the crop that frames it the
way a published model's training data did: the vox models saw faces filling most of a square
frame, the taichi models whole bodies.

Coordinates are pixels of a frame as :mod:`fomm.data.video` reads it (upright): x to the right,
then y down, from the top-left corner. A :class:`Box` is ``(x0, y0, x1, y1)`` with ``x1 - x0`` its
width, in floats; crop boxes have whole-pixel sizes, and whole-pixel positions except where a
crop moves with its subject.

Detectors are callables ``detector(frame (H, W, 3) uint8 RGB) -> list[Box]`` (the
:class:`SubjectDetector` protocol), looked up by name in :data:`DETECTORS` or given as
``module:factory`` for one of a user's own (face-alignment, insightface, mediapipe, ...). What
they return is checked on every frame (:func:`checked_detector`): a detector that fails or
returns something that is not a box inside the frame stops the work with one line naming it,
never a crop. The bundled ones need nothing downloaded at run time: they use the models that ship
inside ``opencv-python-headless`` 4.x. Which ones, and why, was measured on real photographs (see
docs/animation.md, "Which detectors, and why"):

* ``haar-face`` (faces, default): OpenCV's frontal-face Haar cascade, run upright and, only when
  that finds nothing, on the frame turned by 20 and 40 degrees either way (tilted heads);
* ``face-body`` (bodies, default): a body box laid out from each face found, with human
  proportions (a standing adult is about 7.5 heads tall), so portraits and upper bodies work;
* ``hog-body``: OpenCV's HOG pedestrian detector, for whole upright figures whose face is too
  small or turned away.

A video is planned in one pass of detection (:func:`detect_video`). Its detections are then
followed from frame to frame as tracks, one per subject (:func:`plan_segments`): boxes of one frame
that show the same subject are merged, a box joins the track whose subject it overlaps or is near,
and a track ends only at a scene change or when its subject has been missing for several frames.
Each track is a :class:`Segment` (``fomm crop`` writes one file per segment) with one crop, the
union of its boxes enlarged by the margin, or, following (``follow=True``), a crop of fixed size
whose centre follows a smoothing spline through the detections. :func:`left_out_frames` says which
frames no segment keeps, and why.

For animation, source and driving must frame their subjects alike: :func:`source_crop` and
:func:`driving_crop` give crops of the same subject-to-crop proportion (see :func:`driving_crop`
for why, and why its crop moves only when it must).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Protocol, Sequence

import cv2
import numpy as np
from scipy.interpolate import make_smoothing_spline
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import linear_sum_assignment

from .data.frames import cut, resize
from .errors import DataError, UserError

__all__ = [
    "Box",
    "SubjectDetector",
    "DetectorError",
    "DetectorEntry",
    "DETECTORS",
    "DEFAULT_DETECTORS",
    "DEFAULT_MARGINS",
    "SUBJECTS",
    "HaarFaceDetector",
    "BodyFromFaceDetector",
    "HogBodyDetector",
    "CheckedDetector",
    "SceneChangeDetector",
    "Segment",
    "LeftOut",
    "VideoDetections",
    "register_detector",
    "make_detector",
    "checked_detector",
    "crop_box",
    "crop_frame",
    "most_confident",
    "merge_duplicates",
    "subject_crop",
    "source_crop",
    "driving_crop",
    "crop_to_subject",
    "detect_video",
    "plan_segments",
    "left_out_frames",
]

logger = logging.getLogger(__name__)

SUBJECTS = ("face", "body")
#: Margin added on each side of the subject, as a fraction of its size. A face box (brows to
#: chin) 2.2 times as wide takes in the hair, the ears and the neck, as the vox crops do (the
#: box is centred on the nose, below the middle of the head, hence more than double); a body
#: box is already the whole figure, so taichi-style crops only need some room around it.
DEFAULT_MARGINS = {"face": 0.6, "body": 0.1}

# Two boxes of one frame show the same subject when the smaller lies this much inside the larger
# (a face detector's box on an eye and brow inside the whole face's box: the Haar cascade finds
# such a box, scoring higher than the face, on 68 of the 169 frames of the TPSMM talking-head
# clip, a close-up) or when they overlap this much (two boxes of one face a few pixels apart).
DUPLICATE_INSIDE = 0.6
DUPLICATE_IOU = 0.5
# A box lying this much inside a track's last box, and smaller than PART_AREA of it, is a part of
# that subject found alone (the eye and brow again, on frames where the whole face was missed):
# the subject is seen there, but where it is comes from the whole boxes around that frame.
PART_INSIDE = 0.7
PART_AREA = 0.5
# A box is a track's subject when it overlaps the track's last box this much, or when its centre
# is within MAX_SHIFT of the last box's size (its square root of area) per frame since the track
# was last seen (at most MAX_SHIFT_TOTAL), and its size within a factor MAX_GROWTH.
SAME_SUBJECT_IOU = 0.3
MAX_SHIFT = 0.25
MAX_SHIFT_TOTAL = 1.0
MAX_GROWTH = 1.5
# Frames a subject may go undetected (a detector's blink, a hand before the face) before its
# track ends: a third of a second at 30 frames per second.
MAX_MISSED_FRAMES = 10
# A track detected on fewer of its frames than this is a detector's recurring mistake (a
# badge, a pattern), not a subject: a real one is found on nearly every frame.
MIN_DETECTED_FRACTION = 0.5
# Correlation of two consecutive frames' 32x32 gray thumbnails below which a new shot begins.
# Measured: different photographs correlate at -0.2 to 0.26, consecutive frames of one shot
# at 0.94 even with noise and +-15% brightness flicker (which moves a brightness histogram as
# much as a cut does), a pan of 5% of the width per frame at 0.6.
SCENE_CHANGE_CORRELATION = 0.4
# A driving crop that starts or stops moving with its subject does so over about this many frames
# (the standard deviation of a Gaussian over its path), not from one frame to the next: the
# subject's motion within the crop, which the model transfers, changes as smoothly.
DRIVING_CROP_EASE_FRAMES = 4.0
# A followed crop's path needs this many frames for a smoothing spline to be fitted to it.
_MIN_SPLINE_FRAMES = 5
# The frame a detector made by make_detector is tried on before any work (height, width).
_PROBE_FRAME = (120, 160)


class DetectorError(UserError):
    """A detector that cannot be made, fails, or answers with something that is not a box in the
    frame: the message names the detector."""


# ------------------------------------------------------------------------------------------
# boxes


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels, ``(x0, y0)`` its top-left corner and ``(x1, y1)`` its
    bottom-right one (exclusive: ``x1 - x0`` is the width). ``score`` orders a detector's
    boxes by confidence (its scale is the detector's own)."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    def intersection(self, other: "Box") -> float:
        """Area of the overlap of the two boxes (0 when they do not overlap)."""
        overlap_x = min(self.x1, other.x1) - max(self.x0, other.x0)
        overlap_y = min(self.y1, other.y1) - max(self.y0, other.y0)
        return overlap_x * overlap_y if overlap_x > 0 and overlap_y > 0 else 0.0

    def iou(self, other: "Box") -> float:
        """Intersection over union, in [0, 1]."""
        intersection = self.intersection(other)
        return intersection / (self.area + other.area - intersection) if intersection > 0 else 0.0

    def inside_fraction(self, other: "Box") -> float:
        """The share of this box's area that lies inside ``other``, in [0, 1]."""
        return self.intersection(other) / self.area if self.area > 0 else 0.0

    def union(self, other: "Box") -> "Box":
        """The smallest box holding both (the higher score kept)."""
        return Box(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1),
                   max(self.y1, other.y1), max(self.score, other.score))

    def contains(self, other: "Box") -> bool:
        return (self.x0 <= other.x0 and self.y0 <= other.y0 and self.x1 >= other.x1
                and self.y1 >= other.y1)

    def scaled(self, factor: float) -> "Box":
        """Coordinates multiplied by ``factor`` (from a resized frame's pixels to the frame's)."""
        return Box(self.x0 * factor, self.y0 * factor, self.x1 * factor, self.y1 * factor, self.score)

    def clipped(self, width: int, height: int) -> "Box":
        """The part of the box inside a ``width`` x ``height`` frame."""
        return Box(min(max(self.x0, 0.0), width), min(max(self.y0, 0.0), height),
                   min(max(self.x1, 0.0), width), min(max(self.y1, 0.0), height), self.score)

    def region(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)``: a :data:`fomm.data.frames.Region`."""
        return (self.x0, self.y0, self.x1, self.y1)

    def pixels(self) -> list[int]:
        """``[x0, y0, x1, y1]`` rounded to whole pixels (for JSON and for slicing)."""
        return [int(round(value)) for value in (self.x0, self.y0, self.x1, self.y1)]


def most_confident(boxes: Sequence[Box]) -> Optional[Box]:
    """The box with the highest score (the larger one among equals), or None. A detector's
    mistakes score low: the Haar cascade's stray boxes have a few neighbours, a real face dozens."""
    return max(boxes, key=lambda box: (box.score, box.area), default=None)


def merge_duplicates(boxes: Sequence[Box]) -> list[Box]:
    """One box per subject of one frame, largest first: a box lying mostly inside a larger one
    (:data:`DUPLICATE_INSIDE` of its area), or overlapping it by :data:`DUPLICATE_IOU`, shows the
    same subject (a face detector's box on an eye and brow inside the face's box) and is merged
    into the larger box, which keeps the higher of their scores. Faces cannot lie inside faces;
    a person standing far behind another inside that one's body box is merged into it too, and
    is inside that crop anyway."""
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda candidate: candidate.area, reverse=True):
        same = next((index for index, larger in enumerate(kept)
                     if box.inside_fraction(larger) >= DUPLICATE_INSIDE or box.iou(larger) >= DUPLICATE_IOU), None)
        if same is None:
            kept.append(box)
        elif box.score > kept[same].score:
            larger = kept[same]
            kept[same] = Box(larger.x0, larger.y0, larger.x1, larger.y1, box.score)
    return kept


def _union(boxes: Iterable[Box]) -> Box:
    iterator = iter(boxes)
    total = next(iterator)
    for box in iterator:
        total = total.union(box)
    return total


def _crop_shape(subject_width: float, subject_height: float, width: int, height: int, margin: float,
                aspect: float) -> tuple[int, int]:
    """``(crop width, crop height)`` in whole pixels of the crop framing a subject of that size
    (see :func:`crop_box`)."""
    if margin < 0:
        raise UserError(f"the crop margin must be 0 or more, got {margin}")
    crop_width = max(subject_width, subject_height / aspect, 1.0) * (1 + 2 * margin)
    crop_height = crop_width * aspect
    fit = min(1.0, width / crop_width, height / crop_height)
    return (min(width, max(1, int(round(crop_width * fit)))), min(height, max(1, int(round(crop_height * fit)))))


def _placed(centre_x: float, centre_y: float, crop_width: int, crop_height: int, width: int, height: int,
            whole_pixels: bool, score: float = 1.0) -> Box:
    """A crop of that size centred on ``(centre_x, centre_y)``, then moved to lie inside the frame."""
    left, top = centre_x - crop_width / 2, centre_y - crop_height / 2
    if whole_pixels:
        left, top = round(left), round(top)
    left = min(max(left, 0), width - crop_width)
    top = min(max(top, 0), height - crop_height)
    return Box(float(left), float(top), float(left + crop_width), float(top + crop_height), score)


def crop_box(subject: Box, width: int, height: int, margin: float, aspect: float = 1.0,
             whole_pixels: bool = True) -> Box:
    """The crop that frames ``subject`` in a ``width`` x ``height`` frame.

    Its shape is ``aspect`` (height / width; 1 is square), big enough for the subject plus
    ``margin`` x its size on each side, centred on the subject and then moved, not cut, to lie
    inside the frame. Only when the frame itself is smaller than that does the crop shrink (to
    the largest of that shape the frame holds). Its size is in whole pixels, and so is its
    position unless ``whole_pixels`` is False (a followed crop glides by fractions of a pixel:
    rounded, a slow drift becomes one-pixel jumps back and forth).
    """
    crop_width, crop_height = _crop_shape(subject.width, subject.height, width, height, margin, aspect)
    return _placed(*subject.centre, crop_width, crop_height, width, height, whole_pixels, subject.score)


def crop_frame(frame: np.ndarray, box: Box, size: Optional[tuple[int, int]] = None) -> np.ndarray:
    """The ``box`` (inside the frame, of a whole-pixel size) of an ``(H, W, 3)`` frame, resized
    to ``size = (height, width)`` when given (anti-aliased when shrinking). A box at a fractional
    position is sampled between pixels (bilinear), at the frame's own resolution."""
    region = cut(frame, box.region())
    return resize(region, *size) if size is not None else region


# ------------------------------------------------------------------------------------------
# detectors


class SubjectDetector(Protocol):
    """Finds subjects in one frame: ``(H, W, 3)`` uint8 RGB -> boxes in that frame's pixels."""

    def __call__(self, frame: np.ndarray) -> list[Box]:
        ...


def _working_gray(frame: np.ndarray, working_size: int) -> tuple[np.ndarray, float]:
    """Gray frame shrunk so that its longer side is at most ``working_size``, and the factor
    from its pixels back to the frame's. Detection cost grows with pixels, accuracy does not."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"a detector takes (H, W, 3) uint8 RGB frames, got {frame.shape} {frame.dtype}")
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    factor = min(1.0, working_size / max(gray.shape))
    if factor < 1.0:
        size = (max(1, round(gray.shape[1] * factor)), max(1, round(gray.shape[0] * factor)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray, 1.0 / factor


def _opencv_model(filename: str) -> str:
    """Path of a model file that ships inside opencv-python(-headless) 4.x."""
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if folder is None or not hasattr(cv2, "CascadeClassifier") or not (Path(folder) / filename).is_file():
        raise UserError(f"OpenCV {cv2.__version__} does not ship {filename} (OpenCV 5 dropped the Haar "
                        f"cascades): install opencv-python-headless>=4.8,<5, as fomm's requirements ask")
    return str(Path(folder) / filename)


class HaarFaceDetector:
    """Frontal faces with OpenCV's Haar cascade (``haarcascade_frontalface_default.xml``).

    The cascade only knows upright faces (measured: found to about 10 degrees of tilt), so when
    none is found upright, the frame is turned by each of ``tilts`` degrees in turn and searched
    again; a face found there is mapped back as an upright square of the same size around its
    centre. Four more searches also mean four more chances of a stray box (measured: 5 of 14
    photographs without people got one, scoring 5-7), so a face found turned must score at
    least ``tilted_min_score``. Frames are searched at most ``working_size`` pixels wide (faces down to
    ``min_size`` pixels there). Scores are the cascade's neighbour counts: a real face gathers
    4 to 30, and a stray box beside a face a few, so boxes scoring under ``relative_score`` of
    the frame's best are dropped (measured on the astronaut: a 5-11 box on the shuttle model
    next to the face's 23-30). Before that, boxes of one face are merged (:func:`merge_duplicates`):
    the cascade also finds an eye and brow as a face of its own, inside the face's box and often
    scoring higher (on 68 of the 169 frames of the TPSMM talking-head clip, a close-up), which
    would drop the face itself.
    """

    def __init__(self, working_size: int = 640, tilts: Sequence[float] = (20.0, -20.0, 40.0, -40.0),
                 min_neighbors: int = 4, scale_factor: float = 1.1, min_size: int = 24,
                 relative_score: float = 0.5, tilted_min_score: float = 8.0) -> None:
        self._cascade = cv2.CascadeClassifier(_opencv_model("haarcascade_frontalface_default.xml"))
        if self._cascade.empty():
            raise UserError("OpenCV could not load its frontal-face cascade; reinstall opencv-python-headless")
        self.working_size = working_size
        self.tilts = tuple(tilts)
        self.min_neighbors = min_neighbors
        self.scale_factor = scale_factor
        self.min_size = min_size
        self.relative_score = relative_score
        self.tilted_min_score = tilted_min_score

    def __call__(self, frame: np.ndarray) -> list[Box]:
        gray, to_frame = _working_gray(frame, self.working_size)
        boxes = self._detect(gray)
        for tilt in self.tilts:
            if boxes:
                break
            boxes = [box for box in self._detect_tilted(gray, tilt) if box.score >= self.tilted_min_score]
        # duplicates first: a part of the face found alone can outscore the whole face
        boxes = merge_duplicates(boxes)
        top = max((box.score for box in boxes), default=0.0)
        return [box.scaled(to_frame) for box in boxes if box.score >= self.relative_score * top]

    def _detect(self, gray: np.ndarray) -> list[Box]:
        rectangles, neighbours = self._cascade.detectMultiScale2(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size))
        return [Box(float(x), float(y), float(x + w), float(y + h), float(count))
                for (x, y, w, h), count in zip(rectangles, np.ravel(neighbours))]

    def _detect_tilted(self, gray: np.ndarray, degrees: float) -> list[Box]:
        height, width = gray.shape
        turn = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
        turned = cv2.warpAffine(gray, turn, (width, height), borderMode=cv2.BORDER_REPLICATE)
        back = cv2.invertAffineTransform(turn)
        boxes = []
        for box in self._detect(turned):
            centre_x, centre_y = back @ np.array([*box.centre, 1.0])
            half_w, half_h = box.width / 2, box.height / 2
            boxes.append(Box(centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h,
                             box.score))
        return boxes


class BodyFromFaceDetector:
    """Bodies laid out from faces with human proportions: a standing adult is about 7.5 heads
    tall and, arms in, 3 heads wide (4 here, for arms and loose clothes). The box runs from a
    little above the face (the top of the head) down 8 face heights and is clipped to the frame,
    so a portrait gives the upper body in view and a full shot the whole figure.

    Measured on the photographs that ship with scikit-image and matplotlib it finds the two
    upper-body portraits whose face is frontal, where OpenCV's HOG and Haar body detectors,
    trained on whole pedestrians, find neither.
    """

    ABOVE_FACE = 0.6  # face heights from the face box's top to the top of the head (and hair)
    HEIGHT = 8.0  # face heights from the face box's top to the feet
    WIDTH = 4.0  # face widths

    def __init__(self, faces: Optional[SubjectDetector] = None) -> None:
        self.faces = faces if faces is not None else HaarFaceDetector()

    def __call__(self, frame: np.ndarray) -> list[Box]:
        height, width = frame.shape[:2]
        bodies = []
        for face in self.faces(frame):
            size = max(face.width, face.height)
            centre_x = face.centre[0]
            body = Box(centre_x - self.WIDTH * size / 2, face.y0 - self.ABOVE_FACE * size,
                       centre_x + self.WIDTH * size / 2, face.y0 + self.HEIGHT * size, face.score)
            bodies.append(body.clipped(width, height))
        return bodies


class HogBodyDetector:
    """Whole upright people with OpenCV's HOG + linear SVM pedestrian detector (Dalal and
    Triggs). It needs most of a standing figure in view: it finds nothing in head-and-shoulders
    portraits, but works where a face is too small or turned away. Scores are SVM margins."""

    def __init__(self, working_size: int = 640) -> None:
        if not hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector"):
            raise UserError(f"OpenCV {cv2.__version__} has no HOG people detector (OpenCV 5 dropped it): "
                            f"install opencv-python-headless>=4.8,<5, as fomm's requirements ask")
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.working_size = working_size

    def __call__(self, frame: np.ndarray) -> list[Box]:
        gray, to_frame = _working_gray(frame, self.working_size)
        rectangles, weights = self._hog.detectMultiScale(gray, winStride=(8, 8), padding=(8, 8), scale=1.05)
        return [Box(float(x), float(y), float(x + w), float(y + h), float(weight)).scaled(to_frame)
                for (x, y, w, h), weight in zip(rectangles, np.ravel(weights))]


@dataclass(frozen=True)
class DetectorEntry:
    """A named detector: what it finds (``subject``), how to make one, one line about it."""

    subject: str
    make: Callable[[], SubjectDetector]
    description: str


DETECTORS: dict[str, DetectorEntry] = {
    "haar-face": DetectorEntry("face", HaarFaceDetector,
                               "OpenCV's frontal-face Haar cascade, with tilted retries (bundled)"),
    "face-body": DetectorEntry("body", BodyFromFaceDetector,
                               "a body box laid out from each face found by haar-face (bundled)"),
    "hog-body": DetectorEntry("body", HogBodyDetector,
                              "OpenCV's HOG pedestrian detector, for whole standing figures (bundled)"),
}
#: The detector each subject gets when none is named.
DEFAULT_DETECTORS = {"face": "haar-face", "body": "face-body"}
# Detectors of this module: an exception from one of them is a bug of fomm's (a traceback), from
# any other detector a problem of that detector's (one line naming it).
_BUNDLED = (HaarFaceDetector, BodyFromFaceDetector, HogBodyDetector)


def register_detector(name: str, subject: str, make: Callable[[], SubjectDetector], description: str) -> None:
    """Make a detector available by ``name`` (to :func:`make_detector`, ``fomm crop --detector``)."""
    if subject not in SUBJECTS:
        raise UserError(f"detector {name!r}: subject must be one of {', '.join(SUBJECTS)}, got {subject!r}")
    DETECTORS[name] = DetectorEntry(subject, make, description)


class CheckedDetector:
    """A detector whose every answer is checked before anything is cropped from it.

    Each call must return a list (or tuple) of :class:`Box` with finite coordinates, ``x1 > x0``
    and ``y1 > y0``, overlapping the frame (a box partly outside it is a subject at the frame's
    edge; one wholly outside, or inverted, is a bug of the detector's). Anything else, or an
    exception from a detector that is not fomm's own, raises :class:`DetectorError` naming it.
    """

    def __init__(self, detector: SubjectDetector, name: str) -> None:
        self.detector = detector
        self.name = name

    def __call__(self, frame: np.ndarray) -> list[Box]:
        height, width = frame.shape[:2]
        if isinstance(self.detector, _BUNDLED):
            found = self.detector(frame)
        else:
            try:
                found = self.detector(frame)
            except UserError:
                raise
            except (Exception, SystemExit) as error:
                raise DetectorError(f"detector {self.name!r} failed on a {width}x{height} frame: "
                                    f"{_describe_exception(error)}") from None
        return self._checked(found, width, height)

    def _checked(self, found: object, width: int, height: int) -> list[Box]:
        if not isinstance(found, (list, tuple)):
            raise DetectorError(f"detector {self.name!r} returned {_short_repr(found)}, not a list of "
                                f"fomm.crop.Box")
        for box in found:
            problem = _box_problem(box, width, height)
            if problem is not None:
                raise DetectorError(f"detector {self.name!r} returned {_short_repr(box)} for a {width}x{height} "
                                    f"frame: {problem}")
        return list(found)


def _box_problem(box: object, width: int, height: int) -> Optional[str]:
    """What is wrong with a detector's ``box`` in a ``width`` x ``height`` frame, or None."""
    if not isinstance(box, Box):
        return "not a fomm.crop.Box(x0, y0, x1, y1, score)"
    corners = (box.x0, box.y0, box.x1, box.y1)
    if not all(isinstance(value, (int, float, np.number)) and math.isfinite(value) for value in corners):
        return "its corners must be finite numbers"
    if box.x1 <= box.x0 or box.y1 <= box.y0:
        return "x1 must be above x0 and y1 above y0 (an inverted or empty box)"
    if box.x0 >= width or box.y0 >= height or box.x1 <= 0 or box.y1 <= 0:
        return "it lies wholly outside the frame"
    return None


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe_exception(error: BaseException) -> str:
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def checked_detector(detector: SubjectDetector, name: Optional[str] = None) -> CheckedDetector:
    """``detector`` behind a :class:`CheckedDetector` (itself when it is one already), named
    ``name`` or after the detector in error messages."""
    if isinstance(detector, CheckedDetector):
        return detector
    if name is None:
        name = getattr(detector, "__qualname__", None) or type(detector).__name__
    return CheckedDetector(detector, name)


# module.sub:factory, Python names only: no relative imports, no empty parts
_FACTORY_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


def make_detector(name: str) -> CheckedDetector:
    """A detector by registry name, or ``module:factory`` for one of your own, checked
    (:class:`CheckedDetector`) and tried once on a small blank frame before it is returned.

    ``module`` is imported from the current folder or from where Python finds installed modules;
    ``factory`` must be a function or class defined in that module (not one it imports, such as
    ``os:system``), callable without arguments, and return a detector: a callable from a frame to
    a list of :class:`Box`. Anything else raises :class:`DetectorError` naming ``name``, before
    the factory is called when that can be told.
    """
    if name in DETECTORS:
        make = DETECTORS[name].make
    elif ":" in name:
        make = _factory(name)
    else:
        raise UserError(f"unknown detector {name!r}: use one of {', '.join(sorted(DETECTORS))}, "
                        f"or module:factory for your own")
    detector = checked_detector(_made(make, name), name)
    detector(np.full((*_PROBE_FRAME, 3), 128, dtype=np.uint8))
    return detector


def _factory(name: str) -> Callable[[], SubjectDetector]:
    """The factory ``module:factory`` names, checked before it is called."""
    if not _FACTORY_NAME.fullmatch(name):
        raise DetectorError(f"detector {name!r}: expected module:factory, a module's dotted name and the name of "
                            f"a function in it (e.g. my_detectors:faces)")
    module_name, _, attribute = name.partition(":")
    module = _import_from_current_folder(module_name, name)
    factory = getattr(module, attribute, None)
    if factory is None:
        raise DetectorError(f"detector {name!r}: {module_name} has no {attribute!r}")
    if not (inspect.isfunction(factory) or inspect.isclass(factory)):
        raise DetectorError(f"detector {name!r}: {module_name}.{attribute} is a {type(factory).__name__}, not a "
                            f"function or class that makes a detector")
    if factory.__module__ != module.__name__:
        raise DetectorError(f"detector {name!r}: {attribute} is not defined in {module_name} (it comes from "
                            f"{factory.__module__}): name a factory of the module that defines it")
    try:
        inspect.signature(factory).bind()
    except TypeError:
        raise DetectorError(f"detector {name!r}: {module_name}.{attribute} needs arguments, and a detector "
                            f"factory is called without any") from None
    except ValueError:  # no signature to read: let the call tell
        pass
    return factory


def _import_from_current_folder(module_name: str, name: str):
    """``module_name`` imported as ``python -m`` would from the current folder: that folder is
    searched first, for the import only."""
    folder = os.getcwd()
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        raise DetectorError(f"detector {name!r}: cannot import {module_name} ({error}); put {module_name}.py in "
                            f"the current folder or install it") from None
    except (Exception, SystemExit) as error:
        raise DetectorError(f"detector {name!r}: importing {module_name} failed: "
                            f"{_describe_exception(error)}") from None
    finally:
        if added:
            sys.path.remove(folder)


def _made(make: Callable[[], SubjectDetector], name: str) -> SubjectDetector:
    """The detector ``make()`` returns, which must at least be callable."""
    if make in _BUNDLED:
        detector = make()
    else:
        try:
            detector = make()
        except UserError:
            raise
        except (Exception, SystemExit) as error:
            raise DetectorError(f"detector {name!r}: making it failed: {_describe_exception(error)}") from None
    if not callable(detector):
        raise DetectorError(f"detector {name!r}: its factory returned {_short_repr(detector)}, not a detector "
                            f"(a callable from a frame to a list of fomm.crop.Box)")
    return detector


# ------------------------------------------------------------------------------------------
# one picture


def _defaults(subject: str, detector: Optional[SubjectDetector],
              margin: Optional[float]) -> tuple[CheckedDetector, float]:
    """The detector and margin to use: those given, else the subject's defaults."""
    if subject not in SUBJECTS:
        raise UserError(f"unknown subject {subject!r} (use one of {', '.join(SUBJECTS)})")
    checked = make_detector(DEFAULT_DETECTORS[subject]) if detector is None else checked_detector(detector)
    return checked, DEFAULT_MARGINS[subject] if margin is None else margin


def subject_crop(image: np.ndarray, detector: SubjectDetector, margin: float, aspect: float = 1.0,
                 what: str = "image", subject: str = "subject") -> tuple[Box, Box]:
    """``(subject box, crop box)`` of the most confident subject in an ``(H, W, 3)`` image. Raises
    DataError naming ``what`` when the detector finds no ``subject`` there."""
    found = most_confident(checked_detector(detector)(image))
    if found is None:
        raise DataError(f"{what}: no {subject} found")
    height, width = image.shape[:2]
    return found, crop_box(found, width, height, margin, aspect)


def source_crop(image: np.ndarray, subject: str = "face", aspect: float = 1.0, what: str = "source image",
                detector: Optional[SubjectDetector] = None, margin: Optional[float] = None) -> Box:
    """The crop of a source image for animation: its most confident ``subject`` (``"face"`` or
    ``"body"``) enlarged by ``margin`` on each side (the subject's default detector and margin
    unless given), ``aspect`` = height / width, moved inside the image. :func:`driving_crop`
    frames the driving video's subject in the same proportion. Raises DataError naming ``what``
    when there is no ``subject`` in the image."""
    detector, margin = _defaults(subject, detector, margin)
    return subject_crop(image, detector, margin, aspect, what=what, subject=subject)[1]


# ------------------------------------------------------------------------------------------
# videos: detection and scene changes


class SceneChangeDetector:
    """Tells, frame after frame of a video, where a new shot begins: two consecutive frames whose
    32x32 gray thumbnails (zero mean, unit norm, so brightness and contrast changes do not count)
    correlate below :data:`SCENE_CHANGE_CORRELATION`, or a cut to or from a flat frame (a fade to
    black)."""

    def __init__(self) -> None:
        self._previous: Optional[np.ndarray] = None
        self._started = False

    def __call__(self, frame: np.ndarray) -> bool:
        """True when ``frame`` (``(H, W, 3)`` uint8 RGB, the next of the video) begins a new shot;
        False for the first frame."""
        thumbnail = _thumbnail(frame)
        previous, started = self._previous, self._started
        self._previous, self._started = thumbnail, True
        if not started:
            return False
        if previous is None or thumbnail is None:
            return (previous is None) != (thumbnail is None)
        return float((previous * thumbnail).sum()) < SCENE_CHANGE_CORRELATION


def _thumbnail(frame: np.ndarray) -> Optional[np.ndarray]:
    """32x32 gray thumbnail, zero mean and unit norm, or None for a flat frame."""
    gray = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (32, 32), interpolation=cv2.INTER_AREA)
    centred = gray.astype(np.float64) - gray.mean()
    norm = np.linalg.norm(centred)
    return centred / norm if norm > 1e-6 else None


@dataclass
class VideoDetections:
    """What one detection pass over a video found: ``boxes[t]`` the detections of frame ``t``
    (duplicates of one subject merged: :func:`merge_duplicates`), ``scene_starts`` the frames
    that begin a new shot (frame 0 not listed), frame size."""

    boxes: list[list[Box]]
    scene_starts: list[int]
    height: int
    width: int

    @property
    def num_frames(self) -> int:
        return len(self.boxes)


def detect_video(frames: Iterable[np.ndarray], detector: SubjectDetector,
                 on_frame: Optional[Callable[[int], None]] = None) -> VideoDetections:
    """Run ``detector`` (checked: :func:`checked_detector`) on every frame, streamed (one frame
    in memory at a time), and note where the scene changes. ``on_frame(t)`` is called after
    each frame (progress)."""
    detector = checked_detector(detector)
    scene_change = SceneChangeDetector()
    boxes: list[list[Box]] = []
    scene_starts: list[int] = []
    height = width = 0
    for index, frame in enumerate(frames):
        height, width = frame.shape[:2]
        if scene_change(frame):
            scene_starts.append(index)
        boxes.append(merge_duplicates(detector(frame)))
        if on_frame is not None:
            on_frame(index)
    return VideoDetections(boxes, scene_starts, height, width)


# ------------------------------------------------------------------------------------------
# tracks: one per subject


class _Track:
    """One subject followed through one shot: ``boxes`` its whole boxes by frame, ``seen`` the
    frames it was found on, in order (a part of it found alone counts as seen), ``last`` its
    latest whole box."""

    def __init__(self, index: int, box: Box) -> None:
        self.boxes: dict[int, Box] = {index: box}
        self.seen: list[int] = [index]
        self.last = box

    def add(self, index: int, whole: Optional[Box]) -> None:
        """The subject seen on frame ``index`` (after the frames seen so far), its whole box
        there when one was found."""
        if self.seen[-1] != index:
            self.seen.append(index)
        if whole is not None:
            self.boxes[index] = self.last = whole

    @property
    def start(self) -> int:
        return self.seen[0]

    @property
    def last_seen(self) -> int:
        return self.seen[-1]

    @property
    def stop(self) -> int:
        return self.seen[-1] + 1

    def is_subject(self, min_frames: int) -> bool:
        """Seen long enough, and often enough within that time, to be a subject rather than a
        detector's passing or recurring mistake."""
        length = self.stop - self.start
        return length >= min_frames and len(self.seen) >= MIN_DETECTED_FRACTION * length


def _is_part(box: Box, track: _Track) -> bool:
    """Whether ``box`` is a part of ``track``'s subject found alone: small, and inside its last box."""
    return box.area < PART_AREA * track.last.area and box.inside_fraction(track.last) >= PART_INSIDE


def _match_cost(track: _Track, box: Box, index: int) -> float:
    """The cost of ``box``, found on frame ``index``, being ``track``'s subject (lower is likelier;
    infinite when it cannot be): the shift of its centre in sizes of the last box, plus the log of
    its change of size."""
    last = track.last
    shift = math.dist(box.centre, last.centre) / math.sqrt(last.area)
    growth = math.sqrt(box.area / last.area)
    near = (shift <= min(MAX_SHIFT * (index - track.last_seen), MAX_SHIFT_TOTAL)
            and 1 / MAX_GROWTH <= growth <= MAX_GROWTH)
    if not near and box.iou(last) < SAME_SUBJECT_IOU:
        return math.inf
    return shift + abs(math.log(growth))


def _tracks(detections: VideoDetections) -> list[_Track]:
    """The subjects of a video, in the order they appear. On each frame, a box that is a part of a
    subject still followed (:func:`_is_part`) is a sighting of it; the other boxes are assigned to
    the tracks still open at the least total cost (:func:`_match_cost`, Hungarian method), and a
    box that fits none begins a track. A track ends at a scene change, or once its subject has
    been missing for more than :data:`MAX_MISSED_FRAMES` frames."""
    scene_starts = set(detections.scene_starts)
    open_tracks: list[_Track] = []
    tracks: list[_Track] = []
    for index, boxes in enumerate(detections.boxes):
        if index in scene_starts:
            open_tracks = []
        open_tracks = [track for track in open_tracks if index - track.last_seen <= MAX_MISSED_FRAMES + 1]
        wholes = []
        for box in boxes:
            owners = [track for track in open_tracks if _is_part(box, track)]
            if owners:
                min(owners, key=lambda track: math.dist(box.centre, track.last.centre)).add(index, None)
            else:
                wholes.append(box)
        costs = np.array([[_match_cost(track, box, index) for box in wholes] for track in open_tracks])
        unmatched = set(range(len(wholes)))
        if costs.size:
            for row, column in zip(*linear_sum_assignment(np.where(np.isfinite(costs), costs, 1e9))):
                if np.isfinite(costs[row, column]):
                    open_tracks[row].add(index, wholes[column])
                    unmatched.discard(column)
        for column in sorted(unmatched):
            track = _Track(index, wholes[column])
            open_tracks.append(track)
            tracks.append(track)
    return tracks


def _smoothed_path(track: _Track) -> np.ndarray:
    """``(N, 4)`` centre x, centre y, width, height of the track's subject on each of its frames
    ``start .. last_seen``: the whole boxes, linearly interpolated across the frames without one,
    then a cubic smoothing spline whose smoothness generalised cross-validation picks from the
    data (:func:`scipy.interpolate.make_smoothing_spline`): a detector's box jumps by whole pixels
    from frame to frame, and the spline keeps the path through them without those jumps and
    without lagging behind steady motion. Too short a track for a spline is held still."""
    frames = np.array(sorted(track.boxes), dtype=np.float64)
    every = np.arange(track.start, track.stop, dtype=np.float64)
    observed = np.array([[*track.boxes[t].centre, track.boxes[t].width, track.boxes[t].height]
                         for t in sorted(track.boxes)])
    series = np.stack([np.interp(every, frames, observed[:, column]) for column in range(4)], axis=1)
    if len(every) >= _MIN_SPLINE_FRAMES:
        return np.stack([make_smoothing_spline(every, series[:, column])(every) for column in range(4)], axis=1)
    return np.repeat(series.mean(axis=0, keepdims=True), len(every), axis=0)


# ------------------------------------------------------------------------------------------
# fomm crop: one segment per subject


@dataclass(frozen=True)
class Segment:
    """Frames ``start`` to ``stop`` (exclusive) of a video, cropped to ``box`` (whole pixels),
    or, when the crop follows the subject, to ``boxes[t - start]`` on frame ``t`` (all of the
    same size; ``box`` is then their union). ``subject`` is the union of the detections.
    ``looseness`` is the crop's width over that of the crop of the subject's median box: 1 when
    it frames the subject as one frame's crop would, 3 when the subject roams so far that it
    fills a third of that share (a fixed crop of a moving subject)."""

    start: int
    stop: int
    box: Box
    subject: Box
    boxes: tuple[Box, ...] = field(default=())
    looseness: float = 1.0

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the crop in the video's pixels."""
        first = self.boxes[0] if self.boxes else self.box
        return int(round(first.height)), int(round(first.width))

    def box_at(self, frame_index: int) -> Box:
        """The crop of frame ``frame_index`` (of the whole video)."""
        if not self.start <= frame_index < self.stop:
            raise IndexError(f"frame {frame_index} is outside the segment {self.start}..{self.stop - 1}")
        return self.boxes[frame_index - self.start] if self.boxes else self.box

    def crops(self, frames: Iterable[np.ndarray], size: Optional[tuple[int, int]] = None) -> Iterator[np.ndarray]:
        """The segment's cropped frames from an iterator over the whole video's frames
        (resized to ``size = (height, width)`` when given)."""
        for index, frame in enumerate(frames):
            if index >= self.stop:
                return
            if index >= self.start:
                yield crop_frame(frame, self.box_at(index), size)


def _followed_boxes(track: _Track, detections: VideoDetections, margin: float,
                    aspect: float) -> tuple[Box, ...]:
    """Crops of one size whose centre follows the track's smoothed path (:func:`_smoothed_path`),
    at sub-pixel positions. The size is the largest smoothed subject size, so the subject is
    never cut."""
    series = _smoothed_path(track)
    crop_width, crop_height = _crop_shape(float(series[:, 2].max()), float(series[:, 3].max()),
                                          detections.width, detections.height, margin, aspect)
    return tuple(_placed(centre_x, centre_y, crop_width, crop_height, detections.width, detections.height,
                         whole_pixels=False) for centre_x, centre_y, _, _ in series)


def _median_crop_shape(track: _Track, detections: VideoDetections, margin: float,
                       aspect: float) -> tuple[int, int]:
    """``(width, height)`` of the crop of the track's median subject box (median width and height)."""
    whole = list(track.boxes.values())
    return _crop_shape(float(np.median([box.width for box in whole])), float(np.median([box.height for box in whole])),
                       detections.width, detections.height, margin, aspect)


def plan_segments(detections: VideoDetections, margin: float, min_frames: int = 1, follow: bool = False,
                  aspect: float = 1.0) -> list[Segment]:
    """One segment per subject and shot (a track: see :func:`_tracks`) of at least
    ``min_frames`` frames, in order of their first frame.

    Without ``follow`` each segment gets one crop: the union of its subject's boxes, enlarged by
    ``margin`` (see :func:`crop_box`). With ``follow`` it gets one crop per frame, of one size,
    moving smoothly with the subject. Either way a segment ends only where its shot does or where
    its subject is lost: unlike the original ``crop-video.py``, a subject that moves is not cut
    into pieces (``follow`` keeps its crop tight).
    """
    segments = []
    for track in _tracks(detections):
        if not track.is_subject(min_frames):
            continue
        subject = _union(track.boxes.values())
        if follow:
            boxes = _followed_boxes(track, detections, margin, aspect)
            segment = Segment(track.start, track.stop, _union(boxes), subject, boxes)
        else:
            box = crop_box(subject, detections.width, detections.height, margin, aspect)
            tight, _ = _median_crop_shape(track, detections, margin, aspect)
            segment = Segment(track.start, track.stop, box, subject, looseness=box.width / tight)
        segments.append(segment)
    segments.sort(key=lambda segment: (segment.start, segment.box.x0))
    logger.debug("%d segments from %d frames", len(segments), detections.num_frames)
    return segments


@dataclass(frozen=True)
class LeftOut:
    """Frames ``start`` to ``stop`` (exclusive) that no segment keeps. The detector found
    something on ``found`` of them: a subject seen too briefly, or too rarely, to be kept
    (``found`` 0: nothing was found there at all)."""

    start: int
    stop: int
    found: int

    def __len__(self) -> int:
        return self.stop - self.start


def left_out_frames(detections: VideoDetections, segments: Sequence[Segment]) -> list[LeftOut]:
    """The runs of frames of the video that none of ``segments`` covers, in order."""
    kept = np.zeros(detections.num_frames, dtype=bool)
    for segment in segments:
        kept[segment.start:segment.stop] = True
    runs = []
    start = None
    for index in range(detections.num_frames + 1):
        if index < detections.num_frames and not kept[index]:
            start = index if start is None else start
        elif start is not None:
            found = sum(1 for boxes in detections.boxes[start:index] if boxes)
            runs.append(LeftOut(start, index, found))
            start = None
    return runs


# ------------------------------------------------------------------------------------------
# fomm animate: a driving video framed like its source


def driving_crop(frames: Iterable[np.ndarray], subject: str = "face", aspect: float = 1.0,
                 what: str = "driving video", detector: Optional[SubjectDetector] = None,
                 margin: Optional[float] = None, on_frame: Optional[Callable[[int], None]] = None) -> Segment:
    """The crop of every frame of a driving video, framing its ``subject`` in the proportion
    :func:`source_crop` frames the source's: a :class:`Segment` of all its frames, with one
    fixed ``box`` when that holds the subject throughout (``boxes`` empty), else a box per frame.

    Why this crop. The model moves the source's keypoints by the driving keypoints' motion within
    the frame, so the subject must fill the same share of both frames: a face that fills 45% of
    the source crop but 15% of the driving one moves by a third of what it should, its shape
    warped to match. The union of the subject's boxes over the video, one still box holding
    everything it does, gives that on a still subject and a wide, loose frame on a moving one.
    The original workflow cut the driving video with ``crop-video.py`` into pieces in which the
    face stays near where it began, each cropped to its faces' union, so that every piece framed
    the face about as a portrait does; a single driving video cannot be cut, so here the crop
    has the source's proportion (the subject's median size, enlarged by the same margin) and
    stays still while the subject moves within it, keeping the subject's own motion in the frame,
    as those pieces did. Only where the subject would come nearer to the crop's edge than half
    the margin does the crop move with it, by as much as that takes and no more (a camera with a
    dead zone, run along the subject's smoothed path: see :func:`_smoothed_path`), starting and
    stopping over a few frames (:data:`DRIVING_CROP_EASE_FRAMES`).

    The subject is the one seen on most frames (the most confident among equals), in the first
    shot it appears in; before it is found and after it is lost the crop holds still. Each frame
    is read once (streamed); ``on_frame(t)`` is called after each (progress). The subject's
    default detector and margin are used unless given. Raises DataError naming ``what`` when no
    frame shows a ``subject``.
    """
    detector, margin = _defaults(subject, detector, margin)
    detections = detect_video(frames, detector, on_frame)
    tracks = _tracks(detections)
    if not tracks:
        raise DataError(f"{what}: no {subject} found in any frame")
    main = max(tracks, key=lambda track: (len(track.seen), max(box.score for box in track.boxes.values())))
    return _dead_zone_segment(main, detections, margin, aspect)


def _dead_zone_segment(track: _Track, detections: VideoDetections, margin: float, aspect: float) -> Segment:
    """The crops of :func:`driving_crop` for one track, over all frames of the video."""
    width, height = detections.width, detections.height
    crop_width, crop_height = _median_crop_shape(track, detections, margin, aspect)
    path = _smoothed_path(track)
    # how far the subject's centre may stray from the crop's while keeping half the margin
    slack = np.stack([np.maximum(0.0, (crop_width - path[:, 2] * (1 + margin)) / 2),
                      np.maximum(0.0, (crop_height - path[:, 3] * (1 + margin)) / 2)], axis=1)
    centre = np.median(path[:, :2], axis=0)
    centres = []
    for subject_centre, room in zip(path[:, :2], slack):
        centre = np.clip(centre, subject_centre - room, subject_centre + room)
        centres.append(centre)
    subject = _union(track.boxes.values())
    placed = {_placed(*point, crop_width, crop_height, width, height, whole_pixels=False) for point in centres}
    if len(placed) == 1:  # it never moved (or the frame held it still): one box, whole pixels
        box = _placed(*centres[0], crop_width, crop_height, width, height, whole_pixels=True)
        return Segment(0, detections.num_frames, box, subject)
    eased = gaussian_filter1d(np.array(centres), DRIVING_CROP_EASE_FRAMES, axis=0, mode="nearest")
    moving = [_placed(*point, crop_width, crop_height, width, height, whole_pixels=False) for point in eased]
    boxes = ([moving[0]] * track.start + moving + [moving[-1]] * (detections.num_frames - track.stop))
    return Segment(0, detections.num_frames, _union(boxes), subject, tuple(boxes))


def crop_to_subject(frames: np.ndarray, subject: str, aspect: float = 1.0, what: str = "video",
                    detector: Optional[SubjectDetector] = None, margin: Optional[float] = None) -> np.ndarray:
    """``(T, H, W, 3)`` frames cut to crops framing ``subject`` (``"face"`` or ``"body"``) at the
    input's resolution, ``aspect`` = height / width: :func:`driving_crop` 's crops, which for one
    frame (a source image) are :func:`source_crop` 's. The subject's default detector and margin
    are used unless given. Raises DataError naming ``what`` when no frame shows the subject."""
    segment = driving_crop(frames, subject, aspect, what=what, detector=detector, margin=margin)
    return np.stack([crop_frame(frame, segment.box_at(index)) for index, frame in enumerate(frames)])
