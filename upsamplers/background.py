"""The background upsampler of whole photos (`--bg_upsampler`): any super-resolution network spandrel loads.

Without it the photo is enlarged to `--test_upscale` with bicubic interpolation before the faces
are pasted back, so at 2x or 4x the faces look restored and the rest blurred. With it, the network
enlarges the photo in tiles (`--bg_tile`, memory bounded by the tile; `upsamplers.tiles`) at the
run's precision; a network that enlarges more than asked (x4 for 2x) is run, then brought down by
the mean of whole blocks of pixels; one that cannot reach `--test_upscale` stops the run.
"""
import logging
from typing import Self

import numpy as np
import torch

from models.enhancer import NonFiniteOutput
from upsamplers.tiles import upsample_tiled
from utils.cli import UserError
from weights.other_models import choices, other_named, resolve_other
from weights.sources import sparnet_spec
from weights.spandrel_file import BACKGROUND, describe, load_spandrel, on_device

log = logging.getLogger(__name__)

NONE = 'none'
DEFAULT_TILE = 400  # input pixels a side, as GFPGAN's script; memory and time by tile size: docs/whole-photos.md
# Pixels read beyond each side of a tile. Real-ESRGAN's own script reads 10; tiles this wide give, on the test
# photo, a result within one level of the whole photo enlarged at once (tests/test_upsamplers.py).
TILE_OVERLAP = 32


def serves(scale: int, upscale: int) -> bool:
    """Whether a x`scale` network can give `upscale`: its scale a whole multiple of it (run, then brought down)."""
    return scale >= upscale and scale % upscale == 0


def check_scale(scale: int, upscale: int, label: str) -> None:
    """UserError unless a x`scale` network can give `--test_upscale upscale`."""
    if not serves(scale, upscale):
        served = ', '.join(str(factor) for factor in range(1, scale + 1) if serves(scale, factor))
        raise UserError(f'--bg_upsampler {label}: enlarges {scale}x, which cannot give --test_upscale {upscale} '
                        f'(it serves --test_upscale {served}); choose a model whose scale is a multiple of '
                        f'{upscale}, or another --test_upscale')


def check_given(source: str, upscale: int) -> None:
    """The checks possible before any download: a SPARNet given here is refused saying which flags take it (it
    restores aligned faces; spandrel knows no such architecture); the scale of a model of the table against
    `upscale`."""
    if source == NONE:
        return
    spec = sparnet_spec(source)
    if spec is not None:
        name = 'SPARNetHD' if spec.model == 'sparnethd' else 'SPARNet'
        raise UserError(f'--bg_upsampler {source}: is a {name} generator (the face network of this project), not a '
                        'super-resolution model of whole photos; give it to --pretrain_model_path or --face_model; '
                        f'--bg_upsampler takes {choices(BACKGROUND)}')
    model = other_named(source)
    if model is not None and model.role == BACKGROUND:
        check_scale(model.scale, upscale, source)


class BackgroundUpsampler:
    """Callable: (H, W, 3) uint8 photo -> (H * upscale, W * upscale, 3) uint8, enlarged by a spandrel network."""

    def __init__(self, descriptor: object, upscale: int, tile: int = DEFAULT_TILE,
                 device: torch.device | str = 'cpu', precision: str = 'fp32', label: str = '') -> None:
        self.label = label or descriptor.architecture.id
        check_scale(descriptor.scale, upscale, self.label)
        self.descriptor, dtype = on_device(descriptor, device, precision, f'--bg_upsampler {self.label}')
        self.upscale, self.tile, self.device, self.dtype = upscale, tile, torch.device(device), dtype
        if descriptor.scale > upscale:
            log.info('--bg_upsampler %s enlarges %dx: its output is brought down to --test_upscale %d '
                     '(mean of %dx%d pixels)', self.label, descriptor.scale, upscale,
                     descriptor.scale // upscale, descriptor.scale // upscale)

    @classmethod
    def named(cls, source: str, upscale: int, tile: int = DEFAULT_TILE, device: torch.device | str = 'cpu',
              precision: str = 'fp32', weights_dir: str | None = None) -> Self | None:
        """The upsampler `source` names (`--bg_upsampler`: a model of the table, a file or a URL; None for `none`),
        fetched into `weights_dir` (default: the cache) and checked before any photo is read."""
        if source == NONE:
            return None
        check_given(source, upscale)
        path, model = resolve_other(source, BACKGROUND, weights_dir)
        descriptor = load_spandrel(path, path, BACKGROUND)
        log.info('background upsampler: %s, %s, tiles of %s', source, describe(descriptor),
                 f'{tile} px' if tile else 'the whole photo')
        return cls(descriptor, upscale, tile, device, precision, model.name if model is not None else source)

    @torch.inference_mode()
    def __call__(self, photo: np.ndarray) -> np.ndarray:
        try:
            return upsample_tiled(self.descriptor, photo, self.descriptor.scale, self.upscale, self.tile,
                                  TILE_OVERLAP, self.descriptor.size_requirements.multiple_of, self.device,
                                  self.dtype)
        except ValueError as err:
            raise NonFiniteOutput(f'{err} (--bg_upsampler {self.label}; try --precision fp32)') from err
