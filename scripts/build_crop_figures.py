"""Build the pictures of the crop workflow in docs/animation.md from photographs that ship with
scikit-image, with the bundled detectors (nothing is downloaded):

    .venv/bin/python scripts/build_crop_figures.py

* ``docs/assets/crop-before-after.png``: a wide, phone-style frame with the astronaut small and
  off centre (the face and body found, and the crops they give, drawn on it), then what the model
  would be given: the whole frame squeezed, the centre crop (``--crop center``), the face crop
  (``fomm crop`` / ``--crop face``) and the body crop (``--subject body`` / ``--crop body``).
* ``docs/assets/crop-follow.png``: the detector's face centre on a moving, noisy clip against the
  path of ``fomm crop --follow``'s crop, frame by frame.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import skimage.data  # noqa: E402

from fomm.crop import (  # noqa: E402
    DEFAULT_MARGINS,
    BodyFromFaceDetector,
    Box,
    HaarFaceDetector,
    crop_frame,
    detect_video,
    plan_segments,
    subject_crop,
)
from fomm.visualize import save_figure  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "docs" / "assets"
MODEL_SIZE = 256


def phone_frame() -> np.ndarray:
    """A 16:9 frame, 960x540, with the astronaut at 70% size right of centre on a plain wall."""
    astronaut = skimage.data.astronaut()
    move = np.float32([[0.7, 0, 560], [0, 0.7, 182]])
    return cv2.warpAffine(astronaut, move, (960, 540), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(196, 190, 180))


def draw(frame: np.ndarray, box: Box, colour: tuple[int, int, int], thickness: int = 3) -> None:
    x0, y0, x1, y1 = box.pixels()
    cv2.rectangle(frame, (x0, y0), (x1 - 1, y1 - 1), colour, thickness)


def before_after(path: Path) -> None:
    frame = phone_frame()
    face, face_crop = subject_crop(frame, HaarFaceDetector(), DEFAULT_MARGINS["face"], subject="face")
    body, body_crop = subject_crop(frame, BodyFromFaceDetector(), DEFAULT_MARGINS["body"], subject="body")
    height, width = frame.shape[:2]
    side = min(height, width)
    centre = Box((width - side) // 2, (height - side) // 2, (width + side) // 2, (height + side) // 2)
    annotated = frame.copy()
    draw(annotated, centre, (128, 128, 128))
    draw(annotated, body_crop, (40, 90, 220))
    draw(annotated, face, (255, 220, 0), 2)
    draw(annotated, face_crop, (230, 30, 30))
    size = (MODEL_SIZE, MODEL_SIZE)
    panels = [
        ("whole frame squeezed\n(--crop none)", cv2.resize(frame, size, interpolation=cv2.INTER_AREA)),
        ("centre crop\n(--crop center)", crop_frame(frame, centre, size)),
        ("face crop\n(fomm crop, --crop face)", crop_frame(frame, face_crop, size)),
        ("body crop\n(--subject body, --crop body)", crop_frame(frame, body_crop, size)),
    ]
    # 4 square panels under one 16:9 picture as wide as them: heights 4 * 9/16 to 1
    figure = plt.figure(figsize=(12, 3 * (4 * 540 / 960 + 1) + 1), dpi=64)
    grid = figure.add_gridspec(2, 4, height_ratios=[4 * 540 / 960, 1.0])
    top = figure.add_subplot(grid[0, :])
    top.imshow(annotated)
    top.set_title("a wide 960x540 frame, the portrait small and off centre: face found (yellow), "
                  "face crop (red), body crop (blue), centre crop (grey)", fontsize=11)
    top.axis("off")
    for column, (title, panel) in enumerate(panels):
        axis = figure.add_subplot(grid[1, column])
        axis.imshow(panel)
        axis.set_title(title, fontsize=10)
        axis.axis("off")
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)


def moving_clip(num_frames: int = 60) -> np.ndarray:
    """The astronaut at half size drifting right and bobbing, with noise and flicker."""
    rng = np.random.default_rng(0)
    astronaut = skimage.data.astronaut()
    frames = []
    for t in range(num_frames):
        move = np.float32([[0.5, 0, 24 + 3.0 * t], [0, 0.5, 40 + 8 * np.sin(t / 5)]])
        frame = cv2.warpAffine(astronaut, move, (448, 320), flags=cv2.INTER_AREA,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(110, 110, 110)).astype(np.float32)
        frame = frame * rng.uniform(0.9, 1.1) + rng.normal(0, 6, frame.shape)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return np.stack(frames)


def follow(path: Path) -> None:
    detections = detect_video(moving_clip(), HaarFaceDetector())
    (segment,) = plan_segments(detections, DEFAULT_MARGINS["face"], follow=True)
    found = np.array([max(boxes, key=lambda box: box.score).centre for boxes in detections.boxes])
    followed = np.array([box.centre for box in segment.boxes])
    frames = np.arange(len(found))
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.6), dpi=80)
    for axis, column, name in zip(axes, (0, 1), ("x", "y")):
        axis.plot(frames, found[:, column], "o", markersize=3, color="tab:orange", label="face found on each frame")
        axis.plot(frames, followed[:, column], "-", color="tab:blue", label="followed crop (--follow)")
        axis.set_xlabel("frame")
        axis.set_ylabel(f"centre {name} (pixels)")
        axis.grid(alpha=0.3)
    jitter_found = np.abs(np.diff(found, 2, axis=0)).max()
    jitter_followed = np.abs(np.diff(followed, 2, axis=0)).max()
    axes[0].legend(loc="upper left", fontsize=9)
    figure.suptitle(f"largest frame-to-frame change of velocity: {jitter_found:.1f} px found, "
                    f"{jitter_followed:.2f} px followed", fontsize=11)
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)


def main() -> None:
    before_after(ASSETS / "crop-before-after.png")
    follow(ASSETS / "crop-follow.png")
    for name in ("crop-before-after.png", "crop-follow.png"):
        print(f"wrote {ASSETS / name} ({(ASSETS / name).stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
