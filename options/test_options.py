"""Flags of test.py and test_enhance_single_unalign.py."""
import argparse
import os
from collections.abc import Sequence

import torch

from api.choices import CHOICES, DEFAULT_MAX_PIXELS, KINDS, default_batch_size
from api.face_enhancer import face_model_choices
from options.base_options import BaseOptions
from options.detection_flags import add_detection_flags
from options.face_model import resolve_face_model
from options.video_flags import add_video_flags
from upsamplers.background import DEFAULT_TILE, NONE
from upsamplers.background import check_given as check_background
from utils.cli import (
    UserError,
    input_path,
    jpeg_quality,
    non_negative_int,
    number_type,
    output_file,
    output_folder,
    positive_float,
    unquoted,
    unquoted_lower,
)
from weights.other_models import names_of
from weights.spandrel_file import BACKGROUND, LICENCE_FLAG

# Loader processes and writer threads when not given: on the CPU every extra thread takes cores
# from the network (one of each measured fastest); a GPU leaves the cores to them.
DEFAULT_LOADERS = {'cpu': 1, 'cuda': 8}
DEFAULT_WRITERS = {'cpu': 1, 'cuda': 2}


class TestOptions(BaseOptions):
    is_train = False

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser = super().initialize(parser)
        parser.add_argument('--ntest', type=number_type(int, low=1, infinite=True), default=float('inf'),
                            help='test at most this many images')
        parser.add_argument('--results_dir', type=output_folder, default='./results/', help='results are saved here')
        parser.add_argument('--save_as_dir', type=output_folder, default='',
                            help='save outputs in this folder (default: <results_dir>/<name>/test_<epoch>)')
        parser.add_argument('--jpeg_quality', type=jpeg_quality, default=75,
                            help='quality of JPEG outputs (75: PIL default, as the published code)')
        parser.add_argument('--round_output', action='store_true',
                            help='round to the nearest 8-bit level instead of truncating (the published code '
                                 'truncates)')
        parser.add_argument('--reference_impl', action='store_true',
                            help='run the plain module instead of the fast inference path')
        parser.add_argument('--precision', type=unquoted_lower, default='fp32', choices=CHOICES['precision'],
                            help='inference precision: bf16 on CPUs/GPUs that have it, fp16 on GPUs, int8 on CPUs '
                                 '(SPARNets, quantized once and cached beside the weights), auto: the fastest this '
                                 'device runs natively')
        parser.add_argument('--calibration', type=input_path, default=None,
                            help='--precision int8: calibrate on the face images of this folder, like the inputs '
                                 'to enhance (default: the bundled faces)')
        parser.add_argument('--onnx_model', type=input_path, default='',
                            help='run this exported ONNX model with ONNX Runtime instead of PyTorch')
        parser.add_argument('--test_img_path', type=input_path, default='',
                            help='photo or video, or folder of them, for test_enhance_single_unalign.py')
        parser.add_argument('--test_upscale', type=KINDS['test_upscale'], default=1,
                            help='enlarge the whole photo by this factor (1 to 8) before pasting the faces back')
        parser.add_argument('--max_pixels', type=KINDS['max_pixels'], default=DEFAULT_MAX_PIXELS,
                            help='largest image in pixels: --load_size squared for test.py; a whole photo after '
                                 '--test_upscale (a larger photo fails with one line, the others go on)')
        parser.add_argument('--bg_upsampler', type=input_path, default=NONE,
                            help=f"enlarge the photo's background to --test_upscale with this super-resolution model: "
                                 f"{NONE} (bicubic), {', '.join(names_of(BACKGROUND))} (downloaded once into "
                                 '--weights_dir), a model file spandrel loads, or an http(s) URL')
        parser.add_argument('--bg_tile', type=KINDS['bg_tile'], default=DEFAULT_TILE,
                            help='the background upsampler runs on tiles of this many pixels a side (memory grows '
                                 'with its square); 0: the whole photo at once')
        parser.add_argument('--face_model', type=input_path, default='',
                            help=f'the face model of whole photos: {face_model_choices()} (default: '
                                 '--pretrain_model_path, else the released sparnethd_attn2d)')
        parser.add_argument(LICENCE_FLAG, action='store_true',
                            help='accept the licence of CodeFormer (S-Lab License 1.0: non-commercial use only); '
                                 'without it --face_model codeformer is refused')
        parser.add_argument('--codeformer_fidelity', type=KINDS['codeformer_fidelity'], default=0.5,
                            help="CodeFormer's fidelity weight: 0 restores the most, 1 keeps closest to the input")
        parser.add_argument('--ext', type=unquoted_lower, default='jpg', choices=('jpg', 'png'),
                            help='image format of the whole-photo outputs')
        add_detection_flags(parser, text=unquoted_lower)
        add_video_flags(parser)
        parser.add_argument('--face_batch_size', type=KINDS['face_batch_size'], default=4,
                            help='aligned faces enhanced per batch')
        parser.add_argument('--phase', type=unquoted, default='test',
                            help='default --save_as_dir is <results_dir>/<name>/<phase>_<epoch>')
        self.original_flags.add_argument('--eval', action='store_true')
        self.original_flags.add_argument('--num_test', type=int, default=50)
        self.original_flags.add_argument('--scale_factor', type=int, default=8,
                                         help='every input is resized to --load_size, whatever its size')
        self.original_flags.add_argument('--lambda_pix', type=float, default=1.0)
        parser.set_defaults(batch_size=None, num_threads=None)
        parser.add_argument('--skip_existing', action='store_true',
                            help='skip inputs whose output already exists (resumes a killed run)')
        parser.add_argument('--report', type=output_file, default='',
                            help='append one JSON line per input (path, status, error, seconds) to this file')
        parser.add_argument('--write_threads', type=non_negative_int, default=None,
                            help='threads encoding and writing outputs while the network runs (0: in turn; '
                                 'default 1 on the CPU, 2 on a GPU)')
        parser.add_argument('--dist_timeout', type=positive_float, default=30,
                            help='under torchrun, minutes a process waits for the others (at the start and '
                                 'when it has finished its share) before giving up')
        return parser

    ignored_flags = BaseOptions.ignored_flags + ('eval', 'num_test', 'scale_factor', 'lambda_pix', 'debug',
                                                 'serial_batches', 'init_type', 'init_gain')

    def needs_default_weights(self, known: argparse.Namespace) -> bool:
        """Not when --onnx_model or another project's --face_model is the network."""
        return not known.onnx_model and not self.other_face_model

    def parse(self, args: Sequence[str] | None = None, default_weights: str = '') -> argparse.Namespace:
        opt = super().parse(args, default_weights)
        opt.other_face_model = self.other_face_model
        on_gpu = opt.device.type == 'cuda' or (opt.gpus > 0 and torch.cuda.is_available())  # torchrun: not chosen yet
        if opt.batch_size is None:
            opt.batch_size = default_batch_size(torch.device('cuda' if on_gpu else 'cpu'), opt.precision)
        if opt.num_threads is None:
            opt.num_threads = min(DEFAULT_LOADERS['cuda' if on_gpu else 'cpu'], os.cpu_count() or 1)
        if opt.write_threads is None:
            opt.write_threads = DEFAULT_WRITERS['cuda' if on_gpu else 'cpu']
        return opt

    def check_given(self, known: argparse.Namespace) -> None:
        """--load_size within the pixel limit; flags --onnx_model would silently ignore are refused: the exported
        file is the network, in fp32. A background upsampler of the model table that cannot reach --test_upscale
        is refused before any download; --face_model is resolved (a SPARNet becomes --pretrain_model_path,
        another project's model is fetched)."""
        super().check_given(known)
        check_background(known.bg_upsampler, known.test_upscale)
        if known.start is not None and known.end is not None and known.end <= known.start:
            raise UserError(f'--end {known.end:g} must be after --start {known.start:g}')
        if known.load_size is not None and known.load_size ** 2 > known.max_pixels:
            raise UserError(f'--load_size {known.load_size}: {known.load_size ** 2 / 1e6:.1f} megapixels per image, '
                            f'more than --max_pixels {known.max_pixels}; raise --max_pixels if this machine has the '
                            'memory')
        self.other_face_model = resolve_face_model(known) if known.face_model else ''
        if not known.onnx_model:
            return
        contradicting = [flag for flag, given in (
            ('--reference_impl (runs the PyTorch module)', known.reference_impl),
            (f'--precision {known.precision} (the ONNX model runs in fp32, as exported)',
             known.precision not in ('fp32', 'auto')),
            ('--pretrain_model_path (the ONNX file holds the weights)', known.pretrain_model_path),
        ) if given]
        if contradicting:
            raise UserError(f"--onnx_model runs {known.onnx_model} with ONNX Runtime; drop {', '.join(contradicting)}")
