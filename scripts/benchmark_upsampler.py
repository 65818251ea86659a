"""The background upsampler by tile size: seconds and peak memory per megapixel of photo.

    python -m scripts.benchmark_upsampler --models realesrgan_x4plus,realesrgan_x2plus --tiles 64,128,0 --size 160

Each model is Real-ESRGAN's RRDBNet at the released size (23 blocks, 64 features) with random
weights, built by spandrel (the time and memory of a network do not depend on its values), run by
`upsamplers.background.BackgroundUpsampler` at its own scale on a random photo of --size pixels a
side, once per tile size (0: the whole photo at once) after a warm-up, each in a new process. Peak memory is the rise
of the process's resident memory during the run, sampled every 5 ms: bounded by the tile, it is
shown as such and per megapixel of the photo (what the whole photo at once grows with).
Prints a Markdown table and the machine it ran on.
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from upsamplers.background import TILE_OVERLAP, BackgroundUpsampler
from utils.cli import ArgumentParser, UserError, run
from utils.devices import cpu_model, describe_device, set_inference_threads
from weights.other_models import OTHER_MODELS, names_of
from weights.spandrel_file import BACKGROUND, spandrel_module

PAGE = os.sysconf('SC_PAGE_SIZE')


def resident_bytes():
    with open('/proc/self/statm') as handle:
        return int(handle.read().split()[1]) * PAGE


def peak_rise(function):
    """(result, seconds, peak rise of resident memory in bytes) of `function()`."""
    base, peak, done = resident_bytes(), [0], threading.Event()

    def sample():
        while not done.wait(0.005):
            peak[0] = max(peak[0], resident_bytes())
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return result, seconds, max(peak[0], resident_bytes()) - base


def released_size_network(name):
    """spandrel's descriptor of a random-weight RRDBNet of the released model `name` (23 blocks, 64 features)."""
    spandrel = spandrel_module()
    from spandrel.architectures.ESRGAN import ESRGAN
    scale = OTHER_MODELS[name].scale
    net = ESRGAN(in_nc=3 * (4 if scale == 2 else 1), out_nc=3, num_filters=64, num_blocks=23, scale=4,
                 shuffle_factor=2 if scale == 2 else None)
    return spandrel.ModelLoader().load_from_state_dict(net.state_dict())


def measure(name, tile, size):
    """(seconds, peak memory rise in bytes) of enlarging a random photo of `size` px with `name` in tiles of `tile`."""
    set_inference_threads()
    upsampler = BackgroundUpsampler(released_size_network(name), OTHER_MODELS[name].scale, tile, 'cpu', 'fp32', name)
    photo = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    upsampler(photo[:16, :16])  # warm-up, small so that it does not raise the memory of the run
    _, seconds, rise = peak_rise(lambda: upsampler(photo))
    return seconds, rise


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', default=','.join(names_of(BACKGROUND)),
                        help=f"comma-separated, among {','.join(names_of(BACKGROUND))}")
    parser.add_argument('--tiles', default='64,128,0', help='comma-separated tile sizes (0: the whole photo)')
    parser.add_argument('--size', type=int, default=160, help='side of the square random photo, in pixels')
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.models.split(',') if name.strip()]
    unknown = [name for name in names if name not in names_of(BACKGROUND)]
    if unknown or not names:
        raise UserError(f"--models {args.models}: expected some of {', '.join(names_of(BACKGROUND))}")
    tiles = [int(tile) for tile in args.tiles.split(',')]
    threads = set_inference_threads()
    megapixels = args.size ** 2 / 1e6
    print('| model | tile (px) | seconds per megapixel | peak memory (MB) | peak memory per megapixel (GB) |\n'
          '|---|---:|---:|---:|---:|')
    spawn = multiprocessing.get_context('spawn')
    for name in names:
        for tile in tiles:
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:  # a fresh process: its memory starts low
                seconds, rise = pool.submit(measure, name, tile, args.size).result()
            print(f"| {name} | {tile or 'whole photo'} | {seconds / megapixels:,.0f} | {rise / 1e6:,.0f} | "
                  f'{rise / 1e9 / megapixels:,.1f} |', flush=True)
    print(f'\n{args.size}x{args.size} random photo, tiles read {TILE_OVERLAP} px beyond each side, fp32; '
          f'{describe_device("cpu")} ({threads} set), {cpu_model()}, '
          f'{os.cpu_count()} logical CPUs; torch {torch.__version__}, spandrel {spandrel_module().__version__}')
    return 0


if __name__ == '__main__':
    run(main)
