"""3x3 convolutions by Winograd's minimal filtering, F(4x4, 3x3), for fp32 inference on the CPU.

A direct 3x3 convolution spends 9 multiply-adds per output pixel and channel pair. Winograd's
F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016) cuts
each 6x6 input tile into 36 transformed values, multiplies them with the 36 transformed taps of
the kernel (36 independent ``(pixels, in) @ (in, out)`` matrix products) and turns the 36 products
back into a 4x4 output tile: 36 / 16 = 2.25 multiply-adds per output pixel and channel pair, 4x
fewer. The transforms cost memory traffic, not arithmetic, so the method pays on layers with many
channels (the generator's residual bottleneck: 256 channels at 64x64 in vox-256, where it runs in
about half the time of oneDNN's direct fp32 convolution on a 2-core Zen 4).

With the matrices of the paper,

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (per tile; * elementwise over the 6x6 positions)

    B^T = [[4,  0, -5,  0, 1, 0],     G = [[ 1/4,     0,    0],     A^T = [[1, 1,  1, 1,  1, 0],
           [0, -4, -4,  1, 1, 0],          [-1/6,  -1/6, -1/6],            [0, 1, -1, 2, -2, 0],
           [0,  4, -4, -1, 1, 0],          [-1/6,   1/6, -1/6],            [0, 1,  1, 4,  4, 0],
           [0, -2, -1,  2, 1, 0],          [1/24,  1/12,  1/6],            [0, 1, -1, 8, -8, 1]]
           [0,  2, -1, -2, 1, 0],          [1/24, -1/12,  1/6],
           [0,  4,  0, -5, 0, 1]]          [   0,     0,    1]]

The transforms are exact in real arithmetic; in fp32 the outputs differ from a direct convolution
by rounding only (measured ~4e-5 absolute on unit-scale activations at 256 channels, against
~1e-5 for oneDNN's direct kernel; ``tests/test_winograd.py``). In bf16 the larger transform
coefficients would amplify its 8-bit rounding ~15x, so bf16 keeps the direct kernel.

Layout: activations are worked on channels-last, ``(B, H, W, C)``, so every transformed value is a
``(pixels, C)`` matrix ready for the matrix product without a copy.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch import Tensor

from .probe import best_seconds

__all__ = ["WINOGRAD_MIN_CHANNELS", "input_transform", "output_transform", "winograd_conv3x3", "winograd_faster",
           "winograd_weight"]

#: Tile geometry of F(4x4, 3x3): 4x4 outputs from 6x6 inputs.
OUTPUT_TILE = 4
INPUT_TILE = 6

#: Below this many input (and output) channels the transforms cost more than they save (measured
#: on oneDNN fp32, 2 threads: 64 channels at 64x64 is a wash, 256 channels halves the time).
WINOGRAD_MIN_CHANNELS = 128

_FILTER_TRANSFORM = torch.tensor([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=torch.float64)


def winograd_weight(weight: Tensor) -> Tensor:
    """``(O, I, 3, 3)`` kernel -> ``(36, I, O)`` transformed taps ``G g G^T``, position ``6 r + c``
    (r the row, c the column of the 6x6 tile). Computed in fp64, stored in ``weight``'s dtype."""
    if weight.shape[-2:] != (3, 3):
        raise ValueError(f"Winograd F(4x4, 3x3) takes 3x3 kernels, not {tuple(weight.shape[-2:])}")
    g = _FILTER_TRANSFORM.to(weight.device)
    taps = torch.einsum("rk,oikl,cl->rcio", g, weight.detach().double(), g)  # (6, 6, I, O)
    return taps.reshape(INPUT_TILE * INPUT_TILE, weight.shape[1], weight.shape[0]).to(weight.dtype).contiguous()


def input_transform(d: list[Tensor], out: Tensor) -> None:
    """``out[r] = sum_k B^T[r, k] d[k]`` for the six taps ``d`` along one axis of the tiles
    (``out``: ``(6, *d[k].shape)``). The rows of ``B^T`` share terms, hence the temporaries."""
    d0, d1, d2, d3, d4, d5 = d
    torch.add(d4, d0, alpha=4, out=out[0]).add_(d2, alpha=-5)
    even, odd = torch.add(d4, d2, alpha=-4), torch.add(d3, d1, alpha=-4)
    torch.add(even, odd, out=out[1])
    torch.sub(even, odd, out=out[2])
    even, odd = torch.sub(d4, d2), torch.sub(d3, d1).mul_(2)
    torch.add(even, odd, out=out[3])
    torch.sub(even, odd, out=out[4])
    torch.add(d5, d1, alpha=4, out=out[5]).add_(d3, alpha=-5)


def output_transform(m: list[Tensor], out: list[Tensor]) -> None:
    """``out[a] = sum_k A^T[a, k] m[k]`` for the six products ``m`` along one axis of the tiles;
    ``out`` holds four tensors of ``m[k]``'s shape (views into the output allowed)."""
    m0, m1, m2, m3, m4, m5 = m
    sum12, diff12, sum34, diff34 = m1 + m2, m1 - m2, m3 + m4, m3 - m4
    torch.add(m0, sum12, out=out[0]).add_(sum34)
    torch.add(diff12, diff34, alpha=2, out=out[1])
    torch.add(sum12, sum34, alpha=4, out=out[2])
    torch.add(diff12, diff34, alpha=8, out=out[3]).add_(m5)


def _tile_taps(x: Tensor, dim: int, tiles: int) -> list[Tensor]:
    """The six strided views of ``x`` along ``dim`` that tile ``t`` reads as taps ``4 t .. 4 t + 5``."""
    return [x.narrow(dim, k, OUTPUT_TILE * (tiles - 1) + 1)[(slice(None),) * dim + (slice(None, None, OUTPUT_TILE),)]
            for k in range(INPUT_TILE)]


_workspaces = threading.local()
#: Four buffers per layer shape: a few shapes (vox-256 has one) stay, a stream of sizes does not pile up.
_MAX_WORKSPACES = 16


def _workspace(name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """A scratch tensor kept per thread between calls. Fresh multi-MiB buffers on every call
    would come from the system each time (page faults on every first touch), which made the same
    convolution run in 17 or 36 ms from one call to the next."""
    cache: dict = _workspaces.__dict__.setdefault("tensors", {})
    # Tensors made under inference mode cannot be written outside it, nor the other way round.
    key = (name, shape, like.dtype, like.device, torch.is_inference_mode_enabled())
    if key not in cache:
        if len(cache) >= _MAX_WORKSPACES:  # many frame sizes in one thread: start again
            cache.clear()
        cache[key] = like.new_empty(shape)
    return cache[key]


def _convolve_one(image: Tensor, taps: Tensor, out: Tensor) -> None:
    """One image ``(H + 2, W + 2, I)`` (zero-padded, channels-last, H and W multiples of 4) into
    ``out`` ``(H / 4, 4, W / 4, 4, O)`` (a view of the channels-last output), no bias."""
    rows, cols = (image.shape[0] - 2) // OUTPUT_TILE, (image.shape[1] - 2) // OUTPUT_TILE
    channels, out_channels = image.shape[2], taps.shape[-1]
    # Transform along the columns, then the rows: V[r, c] = (B^T d B)[r, c] for every tile.
    along_cols = _workspace("along_cols", (INPUT_TILE, image.shape[0], cols, channels), image)
    input_transform(_tile_taps(image, 1, cols), along_cols)
    transformed = _workspace("transformed", (INPUT_TILE, INPUT_TILE, rows, cols, channels), image)
    input_transform(_tile_taps(along_cols, 1, rows), transformed)
    products = _workspace("products", (INPUT_TILE * INPUT_TILE, rows * cols, out_channels), image)
    torch.bmm(transformed.view(INPUT_TILE * INPUT_TILE, rows * cols, channels), taps, out=products)
    products = products.view(INPUT_TILE, INPUT_TILE, rows, cols, out_channels)  # (r, c, tile row, tile col, O)
    # Back along the rows (into a, the output row in the tile), then the columns (b).
    per_row = _workspace("per_row", (OUTPUT_TILE, INPUT_TILE, rows, cols, out_channels), image)
    output_transform(list(products), list(per_row))
    output_transform(list(per_row.transpose(0, 1)), [out[:, :, :, b].permute(1, 0, 2, 3) for b in range(OUTPUT_TILE)])


def winograd_conv3x3(x: Tensor, taps: Tensor, bias: Tensor) -> Tensor:
    """``conv2d(x, weight, bias, padding=1)`` for a 3x3 ``weight`` given as ``taps =
    winograd_weight(weight)``. ``x``: ``(B, I, H, W)`` -> ``(B, O, H, W)`` in channels-last memory.

    Images go one at a time: a vox-256 bottleneck image's 36 transformed copies (9 MiB) stay in
    the CPU's cache, a batch of four (38 MiB) would not (measured: 4 images at once were slower
    than the direct convolution, one at a time twice as fast)."""
    batch, _, height, width = x.shape
    rows, cols = -(-height // OUTPUT_TILE), -(-width // OUTPUT_TILE)
    padded = F.pad(x, (1, OUTPUT_TILE * cols + 1 - width, 1, OUTPUT_TILE * rows + 1 - height))
    padded = padded.permute(0, 2, 3, 1).contiguous()  # (B, H + 2, W + 2, I), a no-op for channels-last input
    out = torch.empty((batch, taps.shape[-1], OUTPUT_TILE * rows, OUTPUT_TILE * cols), dtype=x.dtype, device=x.device,
                      memory_format=torch.channels_last)
    tiles = out.permute(0, 2, 3, 1).view(batch, rows, OUTPUT_TILE, cols, OUTPUT_TILE, -1)
    for index in range(batch):
        _convolve_one(padded[index], taps, tiles[index])
    if (OUTPUT_TILE * rows, OUTPUT_TILE * cols) != (height, width):
        out = out[:, :, :height, :width].contiguous(memory_format=torch.channels_last)
    return out.add_(bias.view(1, -1, 1, 1))


# (in, out, height, width, threads) -> whether the Winograd convolution measured faster.
_measured: dict[tuple[int, ...], bool] = {}
_measuring = threading.Lock()


@torch.no_grad()
def winograd_faster(x: Tensor, weight: Tensor, taps: Tensor, bias: Tensor, repeats: int = 3) -> bool:
    """Whether :func:`winograd_conv3x3` beats ``conv2d`` on one image of ``x``'s shape on this CPU
    with this many threads: measured once (a few convolutions, ~0.1 s at vox-256's bottleneck),
    then remembered for the process. Layers with fewer than :data:`WINOGRAD_MIN_CHANNELS` input
    or output channels, non-CPU tensors and non-fp32 ones are not measured: always False."""
    in_channels, out_channels = weight.shape[1], weight.shape[0]
    if (x.device.type != "cpu" or x.dtype != torch.float32 or weight.dtype != torch.float32
            or min(in_channels, out_channels) < WINOGRAD_MIN_CHANNELS):
        return False
    key = (in_channels, out_channels, x.shape[2], x.shape[3], torch.get_num_threads())
    with _measuring:
        if key not in _measured:
            one = x[:1].contiguous(memory_format=torch.channels_last)
            direct, winograd = best_seconds(lambda: F.conv2d(one, weight, bias, padding=1),
                                            lambda: winograd_conv3x3(one, taps, bias), repeats=repeats)
            _measured[key] = winograd < direct
        return _measured[key]
