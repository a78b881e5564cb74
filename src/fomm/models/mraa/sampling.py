"""How the MRAA family resamples images: ``F.grid_sample`` with ``align_corners=False``.

The MRAA code (pinned to torch 1.4) calls ``grid_sample`` and ``interpolate`` without
``align_corners``, so it got torch's default since 1.3, ``False``: -1 and 1 are the outer *edges*
of the corner pixels. Its coordinate grids are nevertheless the package's
(:func:`fomm.geometry.coordinate_grid`, -1 and 1 at the corner pixels' *centres*), so even the
identity grid samples the image slightly magnified about its centre (by ``W / (W - 1)``). Its
published checkpoints were trained that way, so this family keeps it; the package-wide
:func:`fomm.geometry.warp` (``align_corners=True``) is not used here. Resizing sampling grids and
maps goes through :func:`fomm.geometry.resize_grid` and :func:`fomm.geometry.resize_map`, which
already use ``align_corners=False``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["MRAA_ALIGN_CORNERS", "sample"]

MRAA_ALIGN_CORNERS = False


def sample(image: Tensor, grid: Tensor, padding_mode: str = "zeros") -> Tensor:
    """Backward warp with MRAA's convention: ``out[b, :, i, j] = image[b, :, at grid[b, i, j]]``.

    ``image`` is ``(B, C, H, W)``; ``grid`` is ``(B, H', W', 2)`` of (x, y) in [-1, 1].
    """
    return F.grid_sample(image, grid, mode="bilinear", padding_mode=padding_mode,
                         align_corners=MRAA_ALIGN_CORNERS)
