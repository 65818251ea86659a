"""Flags of test.py and test_enhance_single_unalign.py."""
from utils.detection_flags import add_detection_flags

from .base_options import BaseOptions, unquoted, unquoted_lower


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
        parser.add_argument('--precision', type=unquoted_lower, default='fp32', choices=('fp32', 'bf16', 'fp16'),
                            help='inference precision (bf16 on CPUs/GPUs that have it, fp16 on GPUs)')
        parser.add_argument('--onnx_model', type=unquoted, default='',
                            help='run this exported ONNX model with ONNX Runtime instead of PyTorch')
        parser.add_argument('--test_img_path', type=unquoted, default='',
                            help='photo, or folder of photos, for test_enhance_single_unalign.py')
        parser.add_argument('--test_upscale', type=int, default=1,
                            help='enlarge the whole photo by this factor before pasting the faces back')
        parser.add_argument('--ext', type=unquoted_lower, default='jpg', choices=('jpg', 'png'),
                            help='image format of the whole-photo outputs')
        add_detection_flags(parser, text=unquoted_lower)
        parser.add_argument('--face_batch_size', type=int, default=4, help='aligned faces enhanced per batch')
        return parser
