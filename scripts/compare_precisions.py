"""What a reduced precision costs on your faces: each precision's outputs against fp32's on the same weights and faces,
and the seconds per face of each.

    python -m scripts.compare_precisions --weights sparnethd_attn2d --faces aligned_faces --precisions int8,bf16
    python -m scripts.compare_precisions --weights sparnet --faces lr_faces --min_psnr 45

--faces holds face images as the network is given them (test.py's LR faces; aligned 512x512 crops of photos for
SPARNetHD, as `scripts.align_and_crop_dir` writes them), each resized to the network's size as test.py does. Each
precision runs through the Python API (`api.FaceEnhancer`), int8 quantized first (once, cached beside the weights;
calibrated on --calibration, or the bundled faces). PSNR over RGB, 8-bit outputs. With --min_psnr the command fails
(exit 1) when a precision's lowest PSNR is below it.
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

import os
import statistics
import time

import numpy as np
import torch

from api import FaceEnhancer
from api.choices import CHOICES
from data.single_dataset import read_face
from metrics.psnr_ssim import psnr
from utils.cli import ArgumentParser, UserError, input_path, name_list, number_type, positive_int, run
from utils.devices import describe_device, set_inference_threads
from utils.image_io import find_images


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', type=input_path, required=True,
                        help='a released model name or a checkpoint file (test.py --pretrain_model_path)')
    parser.add_argument('--faces', type=input_path, required=True, help='folder of faces as the network takes them')
    parser.add_argument('--count', type=positive_int, default=16, help='faces to run (default: the first 16)')
    parser.add_argument('--precisions', default='int8', help='comma-separated, each against fp32 (default: int8)')
    parser.add_argument('--calibration', type=input_path, default=None,
                        help='int8: calibrate on the faces of this folder (default: the bundled faces)')
    parser.add_argument('--load_size', type=positive_int, default=None, help="network size (default: the model's)")
    parser.add_argument('--batch_size', type=positive_int, default=None, help="faces per batch (default: test.py's)")
    parser.add_argument('--min_psnr', type=number_type(float), default=None,
                        help='fail (exit 1) if a precision has a face below this PSNR against fp32')
    return parser


def enhanced(enhancer: FaceEnhancer, faces: np.ndarray) -> tuple[np.ndarray, float]:
    """(the enhanced faces, seconds per face), after one face to warm up."""
    enhancer(faces[:1])
    start = time.perf_counter()
    outputs = enhancer(faces)
    return outputs, (time.perf_counter() - start) / len(faces)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    precisions = name_list(args.precisions, [p for p in CHOICES['precision'] if p not in ('fp32', 'auto')],
                           '--precisions')
    set_inference_threads()
    names = find_images(args.faces, '--faces')[:args.count]
    choices = dict(device='cpu', load_size=args.load_size, batch_size=args.batch_size)
    reference = FaceEnhancer(args.weights, precision='fp32', **choices)
    faces = np.stack([read_face(os.path.join(args.faces, name), reference.load_size) for name in names])
    fp32, fp32_seconds = enhanced(reference, faces)
    print(f'{reference.description} on {describe_device(torch.device("cpu"))}, {len(faces)} faces of '
          f'{reference.load_size}x{reference.load_size}')
    print('| precision | s / face | vs fp32 | PSNR vs fp32, mean (dB) | lowest (dB) | largest difference (levels) |')
    print('|---|---:|---:|---:|---:|---:|')
    print(f'| fp32 | {fp32_seconds:.3f} | 1.00x | - | - | - |')
    failed = []
    for precision in precisions:
        enhancer = FaceEnhancer(args.weights, precision=precision, calibration=args.calibration, **choices)
        outputs, seconds = enhanced(enhancer, faces)
        scores = [psnr(a, b, channels='rgb') for a, b in zip(outputs, fp32)]
        largest = int(np.abs(outputs.astype(np.int16) - fp32).max())
        print(f'| {precision} | {seconds:.3f} | {fp32_seconds / seconds:.2f}x | {statistics.fmean(scores):.2f} | '
              f'{min(scores):.2f} | {largest} |')
        if args.min_psnr is not None and min(scores) < args.min_psnr:
            failed.append(f'{precision}: {min(scores):.2f} dB')
    if failed:
        raise UserError(f"below --min_psnr {args.min_psnr:g} dB against fp32: {', '.join(failed)}")
    return 0


if __name__ == '__main__':
    run(main)
