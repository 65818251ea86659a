"""Flags of test.py and test_enhance_single_unalign.py."""
from utils.cli import unquoted, unquoted_lower
from utils.devices import PRECISIONS
from utils.face_detect import DETECTORS

from .base_options import BaseOptions


class TestOptions(BaseOptions):
    is_train = False

    def initialize(self, parser):
        parser = super().initialize(parser)
        parser.add_argument('--ntest', type=float, default=float('inf'), help='test at most this many images')
        parser.add_argument('--results_dir', type=unquoted, default='./results/', help='results are saved here')
        parser.add_argument('--save_as_dir', type=unquoted, default='',
                            help='save outputs in this folder (default: <results_dir>/<name>/test_<epoch>)')
        parser.add_argument('--jpeg_quality', type=int, default=75,
                            help='quality of JPEG outputs (75: PIL default, as the published code)')
        parser.add_argument('--round_output', action='store_true',
                            help='round to the nearest 8-bit level instead of truncating (the published code truncates)')
        parser.add_argument('--reference_impl', action='store_true',
                            help='run the plain module instead of the fast inference path')
        parser.add_argument('--precision', type=unquoted_lower, default='fp32', choices=tuple(PRECISIONS),
                            help='inference precision (bf16 on CPUs/GPUs that have it, fp16 on GPUs)')
        parser.add_argument('--onnx_model', type=unquoted, default='',
                            help='run this exported ONNX model with ONNX Runtime instead of PyTorch')
        parser.add_argument('--test_img_path', type=unquoted, default='',
                            help='photo, or folder of photos, for test_enhance_single_unalign.py')
        parser.add_argument('--test_upscale', type=int, default=1,
                            help='enlarge the whole photo by this factor before pasting the faces back')
        parser.add_argument('--detector', type=unquoted_lower, default='cnn', choices=DETECTORS,
                            help="dlib face detector: cnn (mmod, as the published script) or hog (faster)")
        parser.add_argument('--ext', type=unquoted_lower, default='jpg', choices=('jpg', 'png'),
                            help='image format of the whole-photo outputs')
        parser.add_argument('--detect_max_size', type=int, default=1600,
                            help='photos with a longer side run face detection on a copy downscaled to it; '
                                 'photos at most half of it are searched upsampled 2x, as the published script')
        parser.add_argument('--detect_min_score', type=float, default=None,
                            help='lowest detection score kept (default: 0 for cnn, 0.3 for hog, which else '
                                 'takes badges and patterns for faces)')
        parser.add_argument('--face_batch_size', type=int, default=4, help='aligned faces enhanced per batch')
        parser.add_argument('--phase', type=unquoted, default='test',
                            help='default --save_as_dir is <results_dir>/<name>/<phase>_<epoch>')
        self.original_flags.add_argument('--eval', action='store_true')
        self.original_flags.add_argument('--num_test', type=int, default=50)
        self.original_flags.add_argument('--scale_factor', type=int, default=8,
                                         help='every input is resized to --load_size, whatever its size')
        self.original_flags.add_argument('--lambda_pix', type=float, default=1.0)
        return parser

    ignored_flags = BaseOptions.ignored_flags + ('eval', 'num_test', 'scale_factor', 'lambda_pix', 'debug',
                                                 'serial_batches', 'init_type', 'init_gain')
