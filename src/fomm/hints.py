"""One-line advice the commands give where a newcomer would otherwise be puzzled by the result."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .assets import BUNDLED_CHECKPOINT

__all__ = ["PUBLISHED_CHECKPOINTS", "bundled_model_on_a_photo"]

#: Where the published checkpoints of each family come from (their authors' pages), by file name.
PUBLISHED_CHECKPOINTS = (
    "the bundled model is a 64x64 sprites toy: for real faces and bodies use a published checkpoint, e.g. "
    "FOMM vox-cpk.pth.tar / taichi-cpk.pth.tar (github.com/AliaksandrSiarohin/first-order-model), "
    "TPSMM vox.pth.tar / taichi.pth.tar (github.com/yoyo-nb/Thin-Plate-Spline-Motion-Model), "
    "MRAA vox256.pth / taichi256.pth (github.com/snap-research/articulated-animation): "
    "fomm animate --checkpoint vox-cpk.pth.tar --source face.jpg --driving video.mp4 (see docs/families.md)")
#: A source this much larger than the bundled model's 64 pixels is a photo, not a sprite.
PHOTO_SIDE = 160


def bundled_model_on_a_photo(checkpoint: Optional[Path], source: np.ndarray) -> Optional[str]:
    """The advice above when the bundled sprites model is about to animate what looks like a
    photo (an image much larger than its 64x64 frames), else None."""
    if checkpoint is None or Path(checkpoint).resolve() != BUNDLED_CHECKPOINT.resolve():
        return None
    if min(source.shape[:2]) < PHOTO_SIDE:
        return None
    return f"note: {PUBLISHED_CHECKPOINTS}"
