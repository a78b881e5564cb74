"""The measurements behind the choice of ``fomm crop``'s detectors (docs/animation.md, "Which
detectors, and why"), on photographs that ship with scikit-image and matplotlib:

    .venv/bin/python scripts/measure_crop_detectors.py

Faces, three sets:

* tilted phone-style frames: the astronaut and Grace Hopper placed small (35% and 60% of the
  height) and off centre in 640x360 frames, turned by -30 to 30 degrees in steps of 10 (28
  frames); a face counts as found when a box overlaps the true one with IoU > 0.4;
* scikit-image's ``lfw_subset``: 100 faces and 100 non-faces (25x25), enlarged to 100 px and
  padded by repeating their edges;
* 15 photographs without people (scikit-image's), where any box is a false one.

Bodies: the three portraits (astronaut, Hopper, the cameraman) against hand-marked person boxes.
Detectors the project does not depend on are measured when installed: dlib (``dlib-bin``).
"""

from __future__ import annotations

import time
from typing import Callable

import cv2
import imageio.v3 as iio
import matplotlib.cbook
import numpy as np
import skimage.data
from skimage.feature import Cascade

from fomm.crop import Box, HaarFaceDetector, make_detector, most_confident
from fomm.data.video import to_rgb_uint8

Detector = Callable[[np.ndarray], list]

# hand-marked (x0, y0, x1, y1): the face from brows to chin, and the whole visible person
ASTRONAUT_FACE, ASTRONAUT_PERSON = Box(177, 66, 272, 161), Box(20, 14, 365, 512)
HOPPER_FACE, HOPPER_PERSON = Box(160, 120, 370, 330), Box(15, 22, 512, 600)
CAMERAMAN_PERSON = Box(0, 62, 335, 512)
WITHOUT_PEOPLE = ("coffee", "chelsea", "rocket", "brick", "grass", "gravel", "moon", "page", "text",
                  "immunohistochemistry", "hubble_deep_field", "logo", "horse", "clock")


def hopper() -> np.ndarray:
    return iio.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def tilted_frames() -> list[tuple[np.ndarray, Box]]:
    rng = np.random.default_rng(0)
    frames = []
    for image, face in ((skimage.data.astronaut(), ASTRONAUT_FACE), (hopper(), HOPPER_FACE)):
        for angle in (-30, -20, -10, 0, 10, 20, 30):
            for scale in (0.35, 0.6):
                factor = scale * 360 / image.shape[0]
                centre_x = rng.uniform(0.25, 0.75) * 640
                turn = cv2.getRotationMatrix2D((image.shape[1] / 2, image.shape[0] / 2), angle, factor)
                turn[:, 2] += (centre_x - image.shape[1] / 2, 180 - image.shape[0] / 2)
                frame = cv2.warpAffine(image, turn, (640, 360), borderMode=cv2.BORDER_CONSTANT,
                                       borderValue=(110, 110, 110))
                x, y = turn @ np.array([*face.centre, 1.0])
                half = face.width * factor / 2
                frames.append((frame, Box(x - half, y - half, x + half, y + half)))
    return frames


def lfw_patches() -> tuple[list[np.ndarray], list[np.ndarray]]:
    patches = (skimage.data.lfw_subset() * 255).astype(np.uint8)
    enlarged = [cv2.copyMakeBorder(cv2.resize(patch, (100, 100), interpolation=cv2.INTER_CUBIC), 50, 50, 50, 50,
                                   cv2.BORDER_REPLICATE) for patch in patches]
    rgb = [np.repeat(patch[:, :, None], 3, axis=2) for patch in enlarged]
    return rgb[:100], rgb[100:]


def lbp_cascade() -> Detector:
    cascade = Cascade(skimage.data.lbp_frontal_face_cascade_filename())

    def detect(frame: np.ndarray) -> list[Box]:
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        found = cascade.detect_multi_scale(gray, scale_factor=1.15, step_ratio=1, min_size=(24, 24),
                                           max_size=(400, 400))
        return [Box(d["c"], d["r"], d["c"] + d["width"], d["r"] + d["height"]) for d in found]
    return detect


def dlib_hog() -> Detector:
    import dlib

    detector = dlib.get_frontal_face_detector()

    def detect(frame: np.ndarray) -> list[Box]:
        return [Box(r.left(), r.top(), r.right(), r.bottom()) for r in detector(frame, 1)]
    return detect


def face_row(name: str, detector: Detector, tilted, faces, non_faces, without_people) -> str:
    start = time.perf_counter()
    found = sum(max((box.iou(truth) for box in detector(frame)), default=0.0) > 0.4 for frame, truth in tilted)
    per_frame = (time.perf_counter() - start) / len(tilted) * 1000
    lfw_found = sum(bool(detector(patch)) for patch in faces)
    lfw_false = sum(bool(detector(patch)) for patch in non_faces)
    stray = sum(bool(detector(photo)) for photo in without_people)
    return (f"| {name} | {found}/{len(tilted)} | {lfw_found}/100 | {lfw_false}/100 | {stray}/{len(without_people)} "
            f"| {per_frame:.0f} |")


def main() -> None:
    tilted = tilted_frames()
    faces, non_faces = lfw_patches()
    without_people = [to_rgb_uint8(getattr(skimage.data, name)()) for name in WITHOUT_PEOPLE]
    without_people.append(to_rgb_uint8(skimage.data.stereo_motorcycle()[0]))
    candidates: dict[str, Callable[[], Detector]] = {
        "haar-face (cascade, turned retries, score floor)": HaarFaceDetector,
        "Haar cascade, upright only": lambda: HaarFaceDetector(tilts=()),
        "Haar cascade, turned retries, no score floor": lambda: HaarFaceDetector(tilted_min_score=0),
        "scikit-image LBP cascade": lbp_cascade,
        "dlib HOG (dlib-bin)": dlib_hog,
    }
    print("| face detector | tilted phone-style frames | LFW faces | LFW non-faces with a box "
          "| photos without people with a box | ms per 640x360 frame |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, make in candidates.items():
        try:
            detector = make()
        except ImportError as error:
            print(f"| {name} | not installed ({error}) | | | | |")
            continue
        print(face_row(name, detector, tilted, faces, non_faces, without_people))
    portraits = {"astronaut": (skimage.data.astronaut(), ASTRONAUT_PERSON), "Hopper": (hopper(), HOPPER_PERSON),
                 "cameraman": (to_rgb_uint8(skimage.data.camera()), CAMERAMAN_PERSON)}
    print("\n| body detector | " + " | ".join(f"{name}: IoU with the person" for name in portraits) + " |")
    print("| --- |" + " --- |" * len(portraits))
    for name in ("face-body", "hog-body"):
        detector = make_detector(name)
        scores = []
        for image, person in portraits.values():
            found = most_confident(detector(image))
            scores.append("none found" if found is None else f"{found.iou(person):.2f}")
        print(f"| {name} | " + " | ".join(scores) + " |")


if __name__ == "__main__":
    main()
