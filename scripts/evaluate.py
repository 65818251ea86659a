"""Evaluate a results folder against its ground truth: PSNR, SSIM, FID, identity similarity.

    python scripts/evaluate.py --results_dir R --gt_dir G --metrics psnr,ssim,fid,id --save_json m.json

Results and ground truths are paired by file name (without extension). Writes a per-pair CSV,
prints the means as a Markdown table, and saves them as JSON with --save_json. Exit code: 0,
1 when some images could not be compared (listed in the log and the CSV), 2 on bad input.
"""
import os

from faces.detector import DETECTORS
from metrics import folder_scores as evaluation
from metrics.fid import INCEPTION_WEIGHTS, FIDInception, default_inception_weights_path
from metrics.identity import FaceIdentity
from metrics.pairing import pair_folders
from utils.cli import ArgumentParser, UserError, positive_int, run
from utils.devices import select_device
from weights.download import CACHE_ENV, DEFAULT_CACHE

log = evaluation.log


def build_parser():
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    evaluation.add_pair_arguments(parser)
    parser.add_argument('--metrics', default='psnr,ssim',
                        help=f"comma-separated, among {','.join(evaluation.METRICS)} (default: psnr,ssim)")
    parser.add_argument('--save_csv', default=None,
                        help='per-pair CSV (default: <results_dir>/metrics.csv)')
    parser.add_argument('--save_json', default=None, help='write the means as JSON here')
    parser.add_argument('--inception_weights', default=None,
                        help=f"pytorch-fid's Inception weights (default: {default_inception_weights_path()} if "
                             "there, else the copy in --weights_dir, downloaded on first use)")
    parser.add_argument('--weights_dir', default=None,
                        help=f'folder of downloaded weights (default: ${CACHE_ENV}, else {DEFAULT_CACHE})')
    parser.add_argument('--fid_batch_size', type=positive_int, default=50,
                        help='images per Inception batch (default: 50)')
    parser.add_argument('--id_detector', default='hog', choices=DETECTORS,
                        help='dlib face detector for the identity metric: hog (default, fast) or cnn')
    parser.add_argument('--gpus', type=int, default=1, help='GPUs for FID (default: 1; 0: the CPU)')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        metrics = evaluation.parse_metrics(args.metrics)
    except ValueError as err:
        raise UserError(str(err)) from err
    paired = any(name in evaluation.PAIRED_METRICS for name in metrics)
    pairs = pair_folders(args.results_dir, args.gt_dir, args.skip_unmatched, log) if paired else []
    # Models before any long work: missing weights stop the run at once.
    device = select_device(args.gpus)[0] if 'fid' in metrics else None
    fid_model = (FIDInception(args.inception_weights or INCEPTION_WEIGHTS.fetch(args.weights_dir)).to(device)
                 if 'fid' in metrics else None)
    identity = FaceIdentity(args.id_detector) if 'id' in metrics else None

    csv_path = args.save_csv or os.path.join(args.results_dir, 'metrics.csv')
    summary, failures = evaluation.score_folders(
        args.results_dir, args.gt_dir, pairs, metrics, csv_path, identity, fid_model, device, args.fid_batch_size,
        args.psnr_channels, args.resize_result, args.y_quantization)
    print(evaluation.markdown_table(summary))
    if args.save_json:
        evaluation.write_json(summary, args.save_json)
        log.info('means written to %s', args.save_json)
    if failures:
        log.error('%d image(s) could not be evaluated (see above); the means leave them out', failures)
    return 1 if failures else 0


if __name__ == '__main__':
    run(main)
