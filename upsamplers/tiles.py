"""Running a super-resolution network over a photo in tiles with overlap, so that memory is bounded by the tile.

Each tile is read with `overlap` more pixels on every side (where the photo has them), enlarged,
and only its core is kept: with an overlap wider than the network's reach, the photo comes out as
if it had been enlarged whole. Tiles start on multiples of the network's size step (a pixel
unshuffle of 2 needs even, spandrel's x2 Real-ESRGAN multiples of 4, starts), so each sees the
grid the whole photo would. A network that enlarges more than asked is brought down tile by tile
with the mean of whole blocks of pixels (an exact area resize), and the result is written as uint8:
the network's float activations never exceed one tile.
"""
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Span:
    """One tile along one axis: the pixels it reads [read_start, read_end) and those it writes [start, end)."""

    read_start: int
    read_end: int
    start: int
    end: int


def _round_up(value, multiple):
    return -(-value // multiple) * multiple


def tile_spans(length: int, tile: int, overlap: int, multiple: int = 1) -> list[Span]:
    """The tiles covering `length` pixels: cores of `tile` (0: all of it) rounded up to `multiple`, read with
    `overlap` more pixels each side, starts and inner ends on multiples of `multiple`."""
    tile = _round_up(tile or length, multiple)
    spans = []
    for start in range(0, length, tile):
        end = min(start + tile, length)
        read_start = max(0, (start - overlap) // multiple * multiple)
        read_end = min(length, _round_up(end + overlap, multiple))
        spans.append(Span(read_start, read_end, start, end))
    return spans


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) floats in [0, 1] -> (N, H, W, 3) uint8, rounded (as Real-ESRGAN writes its outputs)."""
    return images.float().mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def upsample_tiled(run: Callable[[torch.Tensor], torch.Tensor], photo: np.ndarray, scale: int, upscale: int,
                   tile: int, overlap: int, multiple: int = 1, device: torch.device | str = 'cpu',
                   dtype: torch.dtype = torch.float32) -> np.ndarray:
    """`photo` (H, W, 3) uint8 enlarged `upscale` times by `run`, a network that enlarges (1, 3, h, w) images in
    [0, 1] `scale` times (`scale` a multiple of `upscale`), in tiles of `tile` pixels (0: in one piece).

    `multiple` is the network's size step; inputs are moved to `device` as `dtype`. Raises ValueError when
    the network gives NaN or infinity.
    """
    if scale % upscale:
        raise ValueError(f'a x{scale} network cannot enlarge {upscale} times by whole blocks')
    height, width = photo.shape[:2]
    reduce = scale // upscale
    result = np.empty((height * upscale, width * upscale, 3), np.uint8)
    for rows in tile_spans(height, tile, overlap, multiple):
        for cols in tile_spans(width, tile, overlap, multiple):
            region = photo[rows.read_start:rows.read_end, cols.read_start:cols.read_end]
            region = np.array(region)  # a writable copy: photos may be read-only arrays
            tensor = torch.from_numpy(region).to(device).permute(2, 0, 1)[None]
            output = run(tensor.to(dtype).div_(255))
            core = output[..., (rows.start - rows.read_start) * scale:(rows.end - rows.read_start) * scale,
                          (cols.start - cols.read_start) * scale:(cols.end - cols.read_start) * scale].float()
            if not torch.isfinite(core).all():
                raise ValueError("the background upsampler's output holds NaN or infinite values")
            if reduce > 1:
                core = F.avg_pool2d(core, reduce)
            result[rows.start * upscale:rows.end * upscale, cols.start * upscale:cols.end * upscale] = to_uint8(core)[0]
    return result
