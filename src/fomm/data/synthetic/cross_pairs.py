"""Cross-identity pairs with exact ground truth: the figure of video A moved by the motion of video B.

The task people use an animation model for is not self-reconstruction (source and driving from
one video) but this: animate source A with the motion of a different driving video B. The
synthetic datasets generate appearance and motion separately, so the right answer exists:

* **sprites**: a :class:`~fomm.data.synthetic.sprites.SpriteFigure` (textures, background,
  depth order, proportions) and a :class:`~fomm.data.synthetic.sprites.SpriteMotion`
  (trajectories of position, rotation, scale and joint angles). The truth is A's figure
  performing B's motion *from A's own first pose*: every channel moves as B's does, from where
  A is at frame 0 (``value(t) = A(0) + B(t) - B(0)``; B's amplitudes, frequencies and phases
  kept). Its frame 0 is A's frame 0, byte for byte.
* **warped-photos**: a :class:`~fomm.data.synthetic.warped_photos.PhotoCrop` and a warp whose
  backward maps are the identity at frame 0. The truth is A's photo under B's warps.

That is the ground truth of **relative** animation (the paper's motion transfer, and what
``fomm animate`` does by default). **Absolute** animation is left out: it would put A's parts
where B's are, which has no single definition when the figures' proportions differ (limb lengths
differ: A retargeted to B's joint angles misses B's joints by 1.3 px on average, 4.3 px at worst,
at 64 px), and for warped photos it is the same as relative.

Besides the frames, each pair's truth holds the keypoints of the truth video (A's joints, or A's
tracked points, moved by B; ``(T, J, 2)`` in [-1, 1], x then y, with visibility) and two masks
``(T, H, W)``:

* ``defined``: pixels whose truth the source shows. Warped photos: where the backward map lands
  inside frame 0 (elsewhere the truth shows photo content from beyond the crop, which no model
  can know; the flow EPE of :mod:`fomm.evaluation.metrics` masks the same pixels). Sprites: every
  pixel (the truth is rendered exactly everywhere).
* ``moving``: pixels whose content moved since frame 0, from the truth's motion (not from its
  pixel values): the point a pixel shows was more than :data:`MOTION_THRESHOLD_PX` away at frame
  0, or (sprites) the pixel shows another surface than at frame 0 (a part moved in or out).
  Sprites decide it on the renderer's sub-pixel samples (:data:`MASK_SUPERSAMPLE` a side), so
  that a pixel that a moving edge only partly covers counts as moving.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fomm.data.synthetic import sprites, warped_photos
from fomm.data.synthetic.common import KIND_CODES
from fomm.geometry import pixel_scale

#: A pixel moved when the point it shows was farther than this at frame 0 (pixels).
MOTION_THRESHOLD_PX = 0.5
#: Sub-pixel samples a side on which a sprite pixel's motion is decided (any sample moving).
MASK_SUPERSAMPLE = 4
#: Mixed into the seed for choosing pairs, so the choice never shares a random stream with a video.
_PAIR_STREAM = 1000


@dataclass
class CrossTruth:
    """The ground truth of animating the first frame of video ``source`` with video ``driving``.

    Attributes:
        source, driving: the two videos' names (e.g. ``sprite00004``).
        frames: ``(T, H, W, 3)`` uint8, A moved by B (frame 0 is A's frame 0).
        keypoints: ``(T, J, 2)`` float32 ``(x, y)`` in [-1, 1]: A's points moved by B.
        visibility: ``(T, J)`` bool.
        defined: ``(T, H, W)`` bool, pixels whose truth the source shows.
        moving: ``(T, H, W)`` bool, pixels whose content moved since frame 0.
    """

    source: str
    driving: str
    frames: np.ndarray
    keypoints: np.ndarray
    visibility: np.ndarray
    defined: np.ndarray
    moving: np.ndarray

    @property
    def name(self) -> str:
        """The pair's file stem: ``<source>-by-<driving>``."""
        return pair_name(self.source, self.driving)


#: Between the source's and the driving video's names in a pair's name.
PAIR_SEPARATOR = "-by-"


def pair_name(source: str, driving: str) -> str:
    """File stem of the pair animating ``source`` with ``driving``."""
    return f"{source}{PAIR_SEPARATOR}{driving}"


def pair_videos(name: str) -> tuple[str, ...]:
    """The videos a pair is made of, read back from its :func:`pair_name`: ``(source,
    driving)``; a name not made by it is its own single unit, ``(name,)``."""
    source, separator, driving = name.partition(PAIR_SEPARATOR)
    return (source, driving) if separator else (name,)


def video_name(kind: str, index: int) -> str:
    """The name :func:`fomm.data.synthetic.generate_video` gives video ``index`` of ``kind``."""
    return {"sprites": "sprite", "warped-photos": "photo"}[kind] + f"{index:05d}"


def choose_pairs(kind: str, seed: int, indices: list[int], count: int) -> list[tuple[int, int]]:
    """``count`` distinct ordered pairs ``(source, driving)`` of different videos among
    ``indices``, drawn from ``(kind, seed)`` alone (the same dataset gives the same pairs).

    Raises ValueError when there are fewer than ``count`` such pairs.
    """
    candidates = [(a, b) for a in indices for b in indices if a != b]
    if count > len(candidates):
        raise ValueError(f"{count} cross pairs asked, but {len(indices)} videos give only "
                         f"{len(candidates)} ordered pairs of different videos")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), KIND_CODES[kind] + _PAIR_STREAM]))
    chosen = rng.permutation(len(candidates))[:count]
    return [candidates[i] for i in chosen]


def cross_truth(kind: str, seed: int, source: int, driving: int, frames: int, size: int) -> CrossTruth:
    """The ground truth of animating video ``source`` with video ``driving`` of the ``kind``
    dataset with ``seed`` (``frames`` frames of ``size`` x ``size``; see the module docstring)."""
    if kind == "sprites":
        return _sprite_truth(seed, source, driving, frames, size)
    if kind == "warped-photos":
        return _warped_truth(seed, source, driving, frames, size)
    raise ValueError(f"unknown dataset kind {kind!r}")


def _pixel_grid(size: int) -> np.ndarray:
    """``(size, size, 2)`` positions ``(x, y)`` in [-1, 1] of the pixel centres."""
    coords = np.linspace(-1.0, 1.0, size)
    return np.stack(np.meshgrid(coords, coords), -1)


def _displacement_px(backward: np.ndarray, points: np.ndarray, size: int) -> np.ndarray:
    """``(T, N, N)`` distance, in pixels of a ``size`` frame, between ``points`` ``(N, N, 2)``
    and their backward positions ``(T, N, N, 2)``."""
    offset = (backward - points) * np.asarray(pixel_scale(size, size))
    return np.linalg.norm(offset, axis=-1)


def _sprite_truth(seed: int, source: int, driving: int, frames: int, size: int) -> CrossTruth:
    figure, own_motion = sprites.sample_sprite(seed, source)
    _, driving_motion = sprites.sample_sprite(seed, driving)
    motion = driving_motion.transferred_to(own_motion)
    video = sprites.render_sprite_video(figure, motion, frames, size, name="truth")
    backward, labels = sprites.sprite_backward_map(figure, motion, frames, size, MASK_SUPERSAMPLE)
    samples = backward[0]  # frame 0's backward map is the identity: the sample positions
    moving_samples = (labels != labels[:1]) | (
        (labels > 0) & (_displacement_px(backward, samples, size) > MOTION_THRESHOLD_PX))
    moving = moving_samples.reshape(frames, size, MASK_SUPERSAMPLE, size, MASK_SUPERSAMPLE).any(axis=(2, 4))
    return CrossTruth(
        source=video_name("sprites", source), driving=video_name("sprites", driving),
        frames=video.frames, keypoints=video.keypoints, visibility=video.visibility,
        defined=np.ones(moving.shape, dtype=bool), moving=moving,
    )


def _warped_truth(seed: int, source: int, driving: int, frames: int, size: int) -> CrossTruth:
    appearance = warped_photos.sample_warped_scene(seed, source, frames, size)
    motion = warped_photos.sample_warped_scene(seed, driving, frames, size)
    keypoints = motion.warp.track(appearance.points)
    defined = (np.abs(motion.flow) <= 1.0).all(-1)
    return CrossTruth(
        source=video_name("warped-photos", source), driving=video_name("warped-photos", driving),
        frames=warped_photos.render_warped_frames(appearance.crop, motion.flow),
        keypoints=keypoints.astype(np.float32), visibility=(np.abs(keypoints) <= 1.0).all(-1),
        defined=defined, moving=_displacement_px(motion.flow, _pixel_grid(size), size) > MOTION_THRESHOLD_PX,
    )
