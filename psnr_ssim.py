"""PSNR and SSIM of a results folder against its ground truth, as in the paper's tables.

    python psnr_ssim.py --results_dir R --gt_dir G

The original project's script name; the same code as `scripts/evaluate.py --metrics psnr,ssim`
(Y channel, Gaussian-window SSIM, pairs matched by file name). Prints the means as Markdown.
"""
import argparse

from tqdm.contrib.logging import logging_redirect_tqdm

from utils import evaluation
from utils.cli import run
from utils.pairing import pair_folders
from utils.psnr_ssim import PSNR_CHANNELS

METRICS = ('psnr', 'ssim')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--results_dir', required=True, help='folder of super-resolved images')
    parser.add_argument('--gt_dir', required=True, help='folder of ground-truth images (same names)')
    parser.add_argument('--psnr_channels', default='y', choices=PSNR_CHANNELS,
                        help="PSNR on the luminance Y (default, the paper's protocol) or on all RGB values")
    parser.add_argument('--skip_unmatched', action='store_true',
                        help='evaluate the matched pairs when some names are in only one folder')
    parser.add_argument('--resize_result', action='store_true',
                        help='resize results to the ground-truth size (bicubic) instead of failing')
    parser.add_argument('--save_csv', default=None, help='also write the per-pair scores here')
    args = parser.parse_args(argv)

    pairs = pair_folders(args.results_dir, args.gt_dir, args.skip_unmatched, evaluation.log)
    with logging_redirect_tqdm():
        rows = evaluation.evaluate_pairs(pairs, METRICS, args.psnr_channels, args.resize_result)
    if args.save_csv:
        evaluation.write_csv(rows, args.save_csv)
    summary = evaluation.summarize(rows, METRICS, psnr_channels=args.psnr_channels)
    print(evaluation.markdown_table(summary))
    return 1 if summary['failed_pairs'] else 0


if __name__ == '__main__':
    run(main)
