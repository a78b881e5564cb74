"""Synthetic datasets that ship with ``fomm`` and generate deterministically from a seed.

* ``sprites``: articulated textured 2-D figures with joint tracks, visibility and part labels
  (:mod:`fomm.data.synthetic.sprites`).
* ``warped-photos``: bundled scikit-image photos under smooth thin-plate-spline warps, with
  exact dense backward flow and carried keypoints (:mod:`fomm.data.synthetic.warped_photos`).
* :func:`make_dataset` writes either to disk in the standard ``train/`` ``test/`` layout with
  ground truth next to each video; :func:`load_ground_truth` reads it back.
* cross-identity pairs (:mod:`fomm.data.synthetic.cross_pairs`): the exact ground truth of
  animating one video's figure with another video's motion, written into ``cross/`` by
  ``make_dataset(..., cross_pairs=N)``; :func:`list_cross_pairs` and :func:`load_cross_truth`
  read them back.

Keypoints are ``(x, y)`` in [-1, 1] with -1 and 1 at the centres of the corner pixels.
"""

from fomm.data.synthetic.common import SyntheticVideo
from fomm.data.synthetic.cross_pairs import CrossTruth, cross_truth
from fomm.data.synthetic.sprites import (
    JOINT_NAMES,
    JOINT_OWNERS,
    PART_NAMES,
    SKELETON_EDGES,
    generate_sprite_video,
)
from fomm.data.synthetic.warped_photos import generate_warped_video
from fomm.data.synthetic.writer import (
    CROSS_FOLDER,
    TRAIN_CROSS_FOLDER,
    DEFAULT_FORMAT,
    KINDS,
    VIDEO_FORMATS,
    CrossPairFiles,
    CrossPairTruth,
    DatasetSummary,
    GroundTruth,
    generate_video,
    ground_truth_path,
    list_cross_pairs,
    load_cross_truth,
    load_ground_truth,
    make_dataset,
)

__all__ = [
    "CROSS_FOLDER",
    "TRAIN_CROSS_FOLDER",
    "DEFAULT_FORMAT",
    "JOINT_NAMES",
    "JOINT_OWNERS",
    "KINDS",
    "PART_NAMES",
    "SKELETON_EDGES",
    "VIDEO_FORMATS",
    "CrossPairFiles",
    "CrossPairTruth",
    "CrossTruth",
    "DatasetSummary",
    "GroundTruth",
    "SyntheticVideo",
    "cross_truth",
    "generate_sprite_video",
    "generate_video",
    "generate_warped_video",
    "ground_truth_path",
    "list_cross_pairs",
    "load_cross_truth",
    "load_ground_truth",
    "make_dataset",
]
