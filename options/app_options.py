"""Flags of app.py, the web page."""
import argparse
import os
from collections.abc import Sequence

from api.choices import DEFAULT_MAX_PIXELS
from utils.cli import UserError, cache_folder, input_path, output_folder
from weights.download import CACHE_ENV, DEFAULT_CACHE
from weights.spandrel_file import LICENCE_FLAG


def parse_app_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options of app.py (UserError in one line for a value out of range)."""
    parser = argparse.ArgumentParser(description='A web page for enhancing the faces of photos, and aligned faces, '
                                                 'with the released models',
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to serve on; 0.0.0.0 opens the page to every machine that can reach this one')
    parser.add_argument('--port', type=int, default=7860, help='port to serve on')
    parser.add_argument('--share', action='store_true',
                        help="also serve the page through a public Gradio link (*.gradio.live): anyone with the link "
                             "can use it")
    parser.add_argument('--gpus', type=int, default=1,
                        help='1: run on the GPU with the most free memory (the CPU when there is none); 0: the CPU')
    parser.add_argument('--weights_dir', type=cache_folder, default=None,
                        help=f'folder of downloaded weights; None: ${CACHE_ENV}, else {DEFAULT_CACHE}')
    parser.add_argument('--results_dir', type=output_folder, default=os.path.join('results', 'app'),
                        help='each run writes everything below its own folder here (<date>-<time>)')
    parser.add_argument('--max_upload_mb', type=int, default=50, help='largest file the page accepts, in MB')
    parser.add_argument('--max_pixels', type=int, default=DEFAULT_MAX_PIXELS,
                        help='largest photo in pixels, counted after the upscale of the Photos tab')
    parser.add_argument('--concurrency', type=int, default=1,
                        help='jobs run at a time on the device; more wait in a queue')
    parser.add_argument('--models', nargs='+', action='extend', default=[], metavar='FILE|DIR', type=input_path,
                        help="add these to the page's choices: checkpoints of train.py (flags from their weights), "
                             'face restorers (GFPGAN, RestoreFormer, CodeFormer) and super-resolution models '
                             '(Real-ESRGAN...) spandrel loads, by file, by name of the other projects\' table, or '
                             'every .pth / .safetensors of a folder; each is checked at start-up')
    parser.add_argument(LICENCE_FLAG, action='store_true',
                        help='accept the licence of CodeFormer (S-Lab License 1.0: non-commercial use only); '
                             'without it --models refuses CodeFormer')
    args = parser.parse_args(argv)
    for flag in ('max_upload_mb', 'max_pixels', 'concurrency'):
        if getattr(args, flag) < 1:
            raise UserError(f'--{flag} must be 1 or more, got {getattr(args, flag)}')
    if not 1 <= args.port <= 65535:
        raise UserError(f'--port must be a port number (1-65535), got {args.port}')
    return args
