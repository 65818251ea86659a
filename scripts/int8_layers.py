"""Which layers int8 quantization may leave in fp32: the quantized SPARNet with each candidate group of layers kept in
fp32, against the fp32 network on real faces (what `models.int8.FP32_NODES` was chosen by).

    python -m scripts.int8_layers --weights check_points/run/latest_net_G.pth --faces faces_val_lfw --count 100

The faces are HR faces (any size; the 128x128 centre square, reduced x8 with PIL bicubic and brought back, as
`scripts.benchmark_end_to_end` makes test.py's inputs); the calibration is the bundled set, or --calibration. For
each variant: PSNR against the fp32 network's outputs, PSNR / SSIM against the HR faces (the published protocol),
and seconds per face at batch 8.
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

import os
import statistics
import tempfile
import time

import numpy as np
import torch
from PIL import Image

import models.int8 as int8
from archs.folded_sparnet import prepare_inference_net
from data.base_dataset import resize_square
from faces.calibration import CalibrationFaces
from metrics import psnr_ssim
from models.onnx_generator import OnnxGenerator
from utils.cli import ArgumentParser, input_path, name_list, positive_int, run
from utils.devices import set_inference_threads
from utils.image_io import find_images, read_rgb
from utils.tensor_image import tensor_to_uint8, uint8_to_tensor
from weights.generator import load_generator_weights
from weights.sources import resolve_generator

# Candidate groups of layers kept in fp32 (regular expressions over the exported graph's node names).
VARIANTS = {
    'all int8': (),
    'first and last convs fp32': (r'^/in_conv/', r'^/out_conv/'),
    'and the attention masks fp32': (r'^/in_conv/', r'^/out_conv/', r'/attention/out_conv/', r'/attention/Sigmoid',
                                     r'^/blocks\.\d+/Mul'),
    'and the residual sums fp32 (the recipe)': int8.FP32_NODES,
    'and the attention up-branches fp32': (r'^/in_conv/', r'^/out_conv/', r'/attention/b3\.'),
}
BATCH = 8


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', type=input_path, required=True, help='SPARNet weights (a file or released name)')
    parser.add_argument('--faces', type=input_path, required=True, help='folder of HR face images')
    parser.add_argument('--count', type=positive_int, default=100, help='faces (default: the first 100)')
    parser.add_argument('--calibration', type=input_path, default=None,
                        help='calibrate on the faces of this folder (default: the bundled faces)')
    parser.add_argument('--method', default=int8.CALIBRATION_METHOD, choices=('MinMax', 'Percentile', 'Entropy'),
                        help='how activation ranges are calibrated (default: the recipe\'s)')
    parser.add_argument('--percentile', type=float, default=int8.PERCENTILE, help='of the percentile calibration')
    parser.add_argument('--variants', default=','.join(VARIANTS), help='comma-separated, among the variants')
    parser.add_argument('--seven_bit', action='store_true',
                        help="7-bit weights, as on CPUs without VNNI (default: this CPU's choice)")
    return parser


def faces_of(folder: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(LR inputs as test.py sees them, HR faces), uint8 128x128."""
    hr, lr = [], []
    for name in find_images(folder, '--faces')[:count]:
        face = resize_square(read_rgb(os.path.join(folder, name)), 128)
        hr.append(np.asarray(face))
        lr.append(np.asarray(face.resize((16, 16), Image.BICUBIC).resize((128, 128), Image.BICUBIC)))
    return np.stack(lr), np.stack(hr)


def outputs_of(net, lr: np.ndarray) -> tuple[np.ndarray, float]:
    """(uint8 outputs, seconds per face)."""
    outputs, start = [], time.perf_counter()
    with torch.inference_mode():
        for index in range(0, len(lr), BATCH):
            outputs.append(tensor_to_uint8(net(uint8_to_tensor(lr[index:index + BATCH])).float().clamp(-1, 1)))
    return np.concatenate(outputs), (time.perf_counter() - start) / len(lr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_inference_threads()
    weights = resolve_generator(args.weights)
    net = weights.spec.build()
    load_generator_weights(net, weights.path, weights.spec)
    net.eval()
    lr, hr = faces_of(args.faces, args.count)
    fp32, fp32_seconds = outputs_of(prepare_inference_net(net, torch.device('cpu'), 'fp32'), lr)
    calibration = CalibrationFaces(args.calibration)

    def scores(outputs):
        return (statistics.fmean(psnr_ssim.psnr(o, h) for o, h in zip(outputs, hr)),
                statistics.fmean(psnr_ssim.ssim(o, h) for o, h in zip(outputs, hr)))
    print(f'{len(lr)} faces of {args.faces}, weights {weights.path}, calibration {calibration.identity} '
          f'({args.method}{f" {args.percentile}" if args.method == "Percentile" else ""}), '
          f'{7 if args.seven_bit or int8.needs_reduced_range() else 8}-bit weights')
    print('| variant | PSNR vs fp32 (dB) | PSNR vs HR (dB) | SSIM vs HR | s / face (batch 8) |')
    print('|---|---:|---:|---:|---:|')
    psnr, ssim = scores(fp32)
    print(f'| fp32 (fast path) | - | {psnr:.4f} | {ssim:.5f} | {fp32_seconds:.4f} |')
    with tempfile.TemporaryDirectory() as folder:
        int8.CALIBRATION_METHOD, int8.PERCENTILE = args.method, args.percentile
        for variant in name_list(args.variants, VARIANTS, '--variants'):
            int8.FP32_NODES = VARIANTS[variant]
            path = int8.quantize_generator(net, os.path.join(folder, f'{variant}.onnx'), 128,
                                           calibration.inputs('sparnet', 128),
                                           args.seven_bit or int8.needs_reduced_range())
            outputs, seconds = outputs_of(OnnxGenerator(path), lr)
            psnr, ssim = scores(outputs)
            against_fp32 = statistics.fmean(psnr_ssim.psnr(o, f, channels='rgb') for o, f in zip(outputs, fp32))
            print(f'| {variant} | {against_fp32:.2f} | {psnr:.4f} | {ssim:.5f} | {seconds:.4f} |', flush=True)
    return 0


if __name__ == '__main__':
    run(main)
