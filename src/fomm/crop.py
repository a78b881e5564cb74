"""Finding the subject of a picture or a video (a face or a body) and the crop that frames it the
way a published model's training data did: the vox models saw faces filling most of a square
frame, the taichi models whole bodies.

Coordinates are pixels of a frame as :mod:`fomm.data.video` reads it (upright): x to the right,
then y down, from the top-left corner. A :class:`Box` is ``(x0, y0, x1, y1)`` with ``x1 - x0`` its
width, in floats; crop boxes have whole-pixel sizes, and whole-pixel positions except where a
crop follows its subject.

Detectors are callables ``detector(frame (H, W, 3) uint8 RGB) -> list[Box]`` (the
:class:`SubjectDetector` protocol), looked up by name in :data:`DETECTORS` or given as
``module:factory`` for one of a user's own (face-alignment, insightface, mediapipe, ...). The
bundled ones need nothing downloaded at run time: they use the models that ship inside
``opencv-python-headless`` 4.x. Which ones, and why, was measured on real photographs
(see docs/animation.md, "Which detectors, and why"):

* ``haar-face`` (faces, default): OpenCV's frontal-face Haar cascade, run upright and, only when
  that finds nothing, on the frame turned by 20 and 40 degrees either way (tilted heads);
* ``face-body`` (bodies, default): a body box laid out from each face found, with human
  proportions (a standing adult is about 7.5 heads tall), so portraits and upper bodies work;
* ``hog-body``: OpenCV's HOG pedestrian detector, for whole upright figures whose face is too
  small or turned away.

A video is planned in one pass of detection (:func:`detect_video`) and then cut into
:class:`Segment` s like the original ``crop-video.py``: a segment ends where a scene changes,
where its subject is lost, or (with fixed boxes) where the subject has moved too far from where
it began; each gets the union of its detections enlarged by the margin, or, when following
(:func:`plan_segments` with ``follow=True``), a box of fixed size whose centre follows a smoothing
spline through the detections. A driving video for ``fomm animate --crop`` gets one box for all
its frames instead (:func:`video_crop`, :func:`crop_to_subject`).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Protocol, Sequence

import cv2
import numpy as np
from scipy.interpolate import make_smoothing_spline

from .data.video import resize_frame
from .errors import DataError, UserError

__all__ = [
    "Box",
    "SubjectDetector",
    "DetectorEntry",
    "DETECTORS",
    "DEFAULT_DETECTORS",
    "DEFAULT_MARGINS",
    "SUBJECTS",
    "HaarFaceDetector",
    "BodyFromFaceDetector",
    "HogBodyDetector",
    "Segment",
    "VideoDetections",
    "register_detector",
    "make_detector",
    "crop_box",
    "crop_frame",
    "best",
    "subject_crop",
    "video_crop",
    "crop_to_subject",
    "detect_video",
    "plan_segments",
    "is_scene_change",
]

logger = logging.getLogger(__name__)

SUBJECTS = ("face", "body")
#: Margin added on each side of the subject, as a fraction of its size. A face box (brows to
#: chin) 2.2 times as wide takes in the hair, the ears and the neck, as the vox crops do (the
#: box is centred on the nose, below the middle of the head, hence more than double); a body
#: box is already the whole figure, so taichi-style crops only need some room around it.
DEFAULT_MARGINS = {"face": 0.6, "body": 0.1}

# Two detections in consecutive frames are the same subject when they overlap this much.
SAME_SUBJECT_IOU = 0.3
# A fixed-box segment ends when its subject's box overlaps the one it started with less than
# this: the original crop-video.py's `iou_with_initial`.
MOVED_TOO_FAR_IOU = 0.25
# Frames a subject may go undetected (a blink of the detector) before its segment ends.
MAX_MISSED_FRAMES = 5
# A track detected on fewer of its frames than this is a detector's recurring mistake (a
# badge, a pattern), not a subject: a real one is found on nearly every frame.
MIN_DETECTED_FRACTION = 0.5
# Correlation of two consecutive frames' 32x32 gray thumbnails below which a new shot begins.
# Measured: different photographs correlate at -0.2 to 0.26, consecutive frames of one shot
# at 0.94 even with noise and +-15% brightness flicker (which moves a brightness histogram as
# much as a cut does), a pan of 5% of the width per frame at 0.6.
SCENE_CHANGE_CORRELATION = 0.4
# A followed crop's path needs this many frames for a smoothing spline to be fitted to it.
_MIN_SPLINE_FRAMES = 5


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

    def iou(self, other: "Box") -> float:
        """Intersection over union, in [0, 1]."""
        overlap_x = min(self.x1, other.x1) - max(self.x0, other.x0)
        overlap_y = min(self.y1, other.y1) - max(self.y0, other.y0)
        if overlap_x <= 0 or overlap_y <= 0:
            return 0.0
        intersection = overlap_x * overlap_y
        return intersection / (self.area + other.area - intersection)

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

    def pixels(self) -> list[int]:
        """``[x0, y0, x1, y1]`` rounded to whole pixels (for JSON and for slicing)."""
        return [int(round(value)) for value in (self.x0, self.y0, self.x1, self.y1)]


def best(boxes: Sequence[Box]) -> Optional[Box]:
    """The most confident box (the larger one among equals), or None. A detector's mistakes
    score low: the Haar cascade's stray boxes have a few neighbours, a real face dozens."""
    return max(boxes, key=lambda box: (box.score, box.area), default=None)


def _union(boxes: Iterable[Box]) -> Box:
    iterator = iter(boxes)
    total = next(iterator)
    for box in iterator:
        total = total.union(box)
    return total


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
    if margin < 0:
        raise UserError(f"the crop margin must be 0 or more, got {margin}")
    crop_width = max(subject.width, subject.height / aspect, 1.0) * (1 + 2 * margin)
    crop_height = crop_width * aspect
    fit = min(1.0, width / crop_width, height / crop_height)
    crop_width = min(width, max(1, int(round(crop_width * fit))))
    crop_height = min(height, max(1, int(round(crop_height * fit))))
    centre_x, centre_y = subject.centre
    left, top = centre_x - crop_width / 2, centre_y - crop_height / 2
    if whole_pixels:
        left, top = round(left), round(top)
    left = min(max(left, 0), width - crop_width)
    top = min(max(top, 0), height - crop_height)
    return Box(float(left), float(top), float(left + crop_width), float(top + crop_height), subject.score)


def crop_frame(frame: np.ndarray, box: Box, size: Optional[tuple[int, int]] = None) -> np.ndarray:
    """The ``box`` (inside the frame, of a whole-pixel size) of an ``(H, W, 3)`` frame, resized
    to ``size = (height, width)`` when given (anti-aliased when shrinking). A box at a fractional
    position is sampled between pixels (bilinear), at the frame's own resolution."""
    crop_width, crop_height = int(round(box.width)), int(round(box.height))
    if float(box.x0).is_integer() and float(box.y0).is_integer():
        x0, y0 = int(box.x0), int(box.y0)
        region = np.ascontiguousarray(frame[y0:y0 + crop_height, x0:x0 + crop_width])
    else:
        # getRectSubPix centres are in pixel-centre coordinates: pixel i is at i, not i + 0.5
        centre = (box.x0 + (crop_width - 1) / 2, box.y0 + (crop_height - 1) / 2)
        region = cv2.getRectSubPix(np.ascontiguousarray(frame), (crop_width, crop_height), centre)
    return resize_frame(region, size) if size is not None else region


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
    next to the face's 23-30).
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


def register_detector(name: str, subject: str, make: Callable[[], SubjectDetector], description: str) -> None:
    """Make a detector available by ``name`` (to :func:`make_detector`, ``fomm crop --detector``)."""
    if subject not in SUBJECTS:
        raise UserError(f"detector {name!r}: subject must be one of {', '.join(SUBJECTS)}, got {subject!r}")
    DETECTORS[name] = DetectorEntry(subject, make, description)


def make_detector(name: str) -> SubjectDetector:
    """A detector by registry name, or ``package.module:factory`` for one of your own: the
    factory is called without arguments and must return a :class:`SubjectDetector`."""
    if name in DETECTORS:
        return DETECTORS[name].make()
    if ":" not in name:
        raise UserError(f"unknown detector {name!r}: use one of {', '.join(sorted(DETECTORS))}, "
                        f"or module:factory for your own")
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UserError(f"detector {name!r}: cannot import {module_name} ({error})") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise UserError(f"detector {name!r}: {module_name} has no callable {attribute!r}")
    detector = factory()
    if not callable(detector):
        raise UserError(f"detector {name!r}: {attribute}() returned {type(detector).__name__}, "
                        f"not a callable frame -> boxes")
    return detector


# ------------------------------------------------------------------------------------------
# one picture


def subject_crop(image: np.ndarray, detector: SubjectDetector, margin: float, aspect: float = 1.0,
                 what: str = "image", subject: str = "subject") -> tuple[Box, Box]:
    """``(subject box, crop box)`` of the most confident subject in an ``(H, W, 3)`` image. Raises
    DataError naming ``what`` when the detector finds no ``subject`` there."""
    found = best(detector(image))
    if found is None:
        raise DataError(f"{what}: no {subject} found")
    height, width = image.shape[:2]
    return found, crop_box(found, width, height, margin, aspect)


def video_crop(frames: Iterable[np.ndarray], detector: SubjectDetector, margin: float,
               aspect: float = 1.0, what: str = "video", subject: str = "subject") -> tuple[Box, Box]:
    """One ``(subject box, crop box)`` for a whole video: the union of the most confident
    subject of every frame, so that everything the subject does stays in view and the crop
    never moves (the right crop for a driving video, whose motion is what gets transferred).
    Raises DataError naming ``what`` when no frame shows a ``subject``."""
    total: Optional[Box] = None
    size = (0, 0)
    for frame in frames:
        size = frame.shape[:2]
        found = best(detector(frame))
        if found is not None:
            total = found if total is None else total.union(found)
    if total is None:
        raise DataError(f"{what}: no {subject} found in any frame")
    return total, crop_box(total, size[1], size[0], margin, aspect)


def crop_to_subject(frames: np.ndarray, subject: str, aspect: float = 1.0, what: str = "video",
                    detector: Optional[SubjectDetector] = None, margin: Optional[float] = None) -> np.ndarray:
    """``(T, H, W, 3)`` frames cut to one crop framing ``subject`` (``"face"`` or ``"body"``) on
    all of them (see :func:`video_crop`), at the input's resolution, ``aspect`` = height / width.
    The subject's default detector and margin are used unless given. Raises DataError naming
    ``what`` when no frame shows the subject."""
    if subject not in SUBJECTS:
        raise UserError(f"unknown subject {subject!r} (use one of {', '.join(SUBJECTS)})")
    detector = detector if detector is not None else make_detector(DEFAULT_DETECTORS[subject])
    margin = DEFAULT_MARGINS[subject] if margin is None else margin
    _, box = video_crop(frames, detector, margin, aspect, what=what, subject=subject)
    return np.stack([crop_frame(frame, box) for frame in frames])


# ------------------------------------------------------------------------------------------
# videos: detection, scene changes, segments


def _thumbnail(frame: np.ndarray) -> Optional[np.ndarray]:
    """32x32 gray thumbnail, zero mean and unit norm (so brightness and contrast changes do not
    count), or None for a flat frame (a fade to black)."""
    gray = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (32, 32), interpolation=cv2.INTER_AREA)
    centred = gray.astype(np.float64) - gray.mean()
    norm = np.linalg.norm(centred)
    return centred / norm if norm > 1e-6 else None


def _thumbnails_differ(previous: Optional[np.ndarray], current: Optional[np.ndarray]) -> bool:
    if previous is None or current is None:
        return (previous is None) != (current is None)
    return float((previous * current).sum()) < SCENE_CHANGE_CORRELATION


def is_scene_change(previous: np.ndarray, current: np.ndarray) -> bool:
    """True when two consecutive ``(H, W, 3)`` frames belong to different shots."""
    return _thumbnails_differ(_thumbnail(previous), _thumbnail(current))


@dataclass
class VideoDetections:
    """What one detection pass over a video found: ``boxes[t]`` the detections of frame ``t``,
    ``scene_starts`` the frames that begin a new shot (frame 0 not listed), frame size."""

    boxes: list[list[Box]]
    scene_starts: list[int]
    height: int
    width: int

    @property
    def num_frames(self) -> int:
        return len(self.boxes)


def detect_video(frames: Iterable[np.ndarray], detector: SubjectDetector,
                 on_frame: Optional[Callable[[int], None]] = None) -> VideoDetections:
    """Run ``detector`` on every frame (streamed: one frame in memory at a time) and note where
    the scene changes. ``on_frame(t)`` is called after each frame (progress)."""
    boxes: list[list[Box]] = []
    scene_starts: list[int] = []
    previous: Optional[np.ndarray] = None
    height = width = 0
    for index, frame in enumerate(frames):
        height, width = frame.shape[:2]
        thumbnail = _thumbnail(frame)
        if index > 0 and _thumbnails_differ(previous, thumbnail):
            scene_starts.append(index)
        previous = thumbnail
        boxes.append(list(detector(frame)))
        if on_frame is not None:
            on_frame(index)
    return VideoDetections(boxes, scene_starts, height, width)


@dataclass(frozen=True)
class Segment:
    """Frames ``start`` to ``stop`` (exclusive) of a video, cropped to ``box`` (whole pixels),
    or, when the crop follows the subject, to ``boxes[t - start]`` on frame ``t`` (all of the
    same size; ``box`` is then their union). ``subject`` is the union of the detections."""

    start: int
    stop: int
    box: Box
    subject: Box
    boxes: tuple[Box, ...] = field(default=())

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


@dataclass
class _Track:
    """One subject followed through consecutive frames (detections by frame index)."""

    start: int
    detections: dict[int, Box]

    @property
    def first(self) -> Box:
        return self.detections[self.start]

    @property
    def last_seen(self) -> int:
        return max(self.detections)

    @property
    def last(self) -> Box:
        return self.detections[self.last_seen]


def _tracks(detections: VideoDetections, follow: bool) -> list[_Track]:
    """Group detections into tracks: a detection joins the open track whose last box it overlaps
    most (at least SAME_SUBJECT_IOU), largest detections first. A track ends at a scene change,
    after MAX_MISSED_FRAMES frames without its subject, or, without ``follow``, when its subject
    has moved too far from its first box for one fixed crop (a new track starts there)."""
    scene_starts = set(detections.scene_starts)
    open_tracks: list[_Track] = []
    closed: list[_Track] = []
    for index, boxes in enumerate(detections.boxes):
        if index in scene_starts:
            closed.extend(open_tracks)
            open_tracks = []
        alive = [track for track in open_tracks if index - track.last_seen <= MAX_MISSED_FRAMES + 1]
        closed.extend(track for track in open_tracks if track not in alive)
        waiting = list(alive)
        for box in sorted(boxes, key=lambda candidate: candidate.area, reverse=True):
            match = max(waiting, key=lambda track: box.iou(track.last), default=None)
            if match is None or box.iou(match.last) < SAME_SUBJECT_IOU:
                alive.append(_Track(index, {index: box}))
                continue
            waiting.remove(match)
            if not follow and box.iou(match.first) < MOVED_TOO_FAR_IOU:
                alive.remove(match)
                closed.append(match)
                alive.append(_Track(index, {index: box}))
            else:
                match.detections[index] = box
        open_tracks = alive
    closed.extend(open_tracks)
    return closed


def _followed_boxes(track: _Track, detections: VideoDetections, margin: float,
                    aspect: float) -> tuple[Box, ...]:
    """Crops of one size whose centre follows the track's detections, smoothed.

    Missed frames are filled by linear interpolation; the centre's path is then a cubic
    smoothing spline whose smoothness generalised cross-validation picks from the data
    (:func:`scipy.interpolate.make_smoothing_spline`): a detector's box jumps by whole pixels
    from frame to frame, and the spline keeps the path through them without those jumps and
    without lagging behind steady motion. The size is the largest smoothed subject size, so
    the subject is never cut.
    """
    frames = np.array(sorted(track.detections), dtype=np.float64)
    every = np.arange(track.start, track.last_seen + 1, dtype=np.float64)
    observed = np.array([[*track.detections[t].centre, track.detections[t].width, track.detections[t].height]
                         for t in sorted(track.detections)])
    series = np.stack([np.interp(every, frames, observed[:, column]) for column in range(4)], axis=1)
    if len(every) >= _MIN_SPLINE_FRAMES:
        series = np.stack([make_smoothing_spline(every, series[:, column])(every) for column in range(4)], axis=1)
    else:  # too short to fit a path: hold the crop still
        series[:] = series.mean(axis=0)
    width, height = float(series[:, 2].max()), float(series[:, 3].max())
    boxes = []
    for centre_x, centre_y, _, _ in series:
        subject = Box(centre_x - width / 2, centre_y - height / 2, centre_x + width / 2, centre_y + height / 2)
        boxes.append(crop_box(subject, detections.width, detections.height, margin, aspect, whole_pixels=False))
    return tuple(boxes)


def plan_segments(detections: VideoDetections, margin: float, min_frames: int = 1, follow: bool = False,
                  aspect: float = 1.0) -> list[Segment]:
    """Segments of at least ``min_frames`` frames, in order of their first frame.

    Without ``follow`` each segment gets one crop: the union of its detections, enlarged by
    ``margin`` (see :func:`crop_box`). With ``follow`` it gets one crop per frame, of one size,
    moving smoothly with the subject.
    """
    segments = []
    for track in _tracks(detections, follow):
        length = track.last_seen + 1 - track.start
        if length < min_frames or len(track.detections) < MIN_DETECTED_FRACTION * length:
            continue
        subject = _union(track.detections.values())
        if follow:
            boxes = _followed_boxes(track, detections, margin, aspect)
            segment = Segment(track.start, track.last_seen + 1, _union(boxes), subject, boxes)
        else:
            box = crop_box(subject, detections.width, detections.height, margin, aspect)
            segment = Segment(track.start, track.last_seen + 1, box, subject)
        segments.append(segment)
    segments.sort(key=lambda segment: (segment.start, segment.box.x0))
    logger.debug("%d segments from %d tracked frames", len(segments), detections.num_frames)
    return segments
