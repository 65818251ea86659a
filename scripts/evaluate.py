"""Evaluate results folders against their ground truth: PSNR, SSIM, FID, identity similarity.

    python -m scripts.evaluate --results_dir R --gt_dir G --metrics psnr,ssim,fid,id --save_json m.json
    python -m scripts.evaluate --results_dir sparnethd=R1 gfpgan=R2 codeformer=R3 --gt_dir G --save_table t.csv

Results and ground truths are paired by file name (without extension). Writes a per-pair CSV
per results folder, prints the means as a Markdown table (one folder) or one table with a row
per method (several; CSV with --save_table), and saves them as JSON with --save_json. Every
folder is paired before any scoring. Exit code: 0, 1 when some images could not be compared
(listed in the log and the CSVs), 2 on bad input.
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

import os

from faces.detector import DETECTORS
from metrics import folder_scores as evaluation
from metrics.fid import INCEPTION_WEIGHTS, FIDInception, default_inception_weights_path
from metrics.identity import FaceIdentity
from metrics.pairing import pair_folders
from utils.cli import ArgumentParser, UserError, cache_folder, input_path, output_file, positive_int, run
from utils.devices import select_device
from weights.download import CACHE_ENV, DEFAULT_CACHE

log = evaluation.log


def build_parser():
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    evaluation.add_pair_arguments(parser, several=True)
    parser.add_argument('--metrics', default='psnr,ssim',
                        help=f"comma-separated, among {','.join(evaluation.METRICS)} (default: psnr,ssim)")
    parser.add_argument('--save_csv', type=output_file, default=None,
                        help='per-pair CSV of a single results folder (default: <results_dir>/metrics.csv, for '
                             'each folder)')
    parser.add_argument('--save_json', type=output_file, default=None,
                        help='write the means as JSON here (several folders: {method: means})')
    parser.add_argument('--save_table', type=output_file, default=None,
                        help='write the table comparing the methods (a row per results folder) as CSV here')
    parser.add_argument('--inception_weights', type=input_path, default=None,
                        help=f"pytorch-fid's Inception weights (default: {default_inception_weights_path()} if "
                             "there, else the copy in --weights_dir, downloaded on first use)")
    parser.add_argument('--weights_dir', type=cache_folder, default=None,
                        help=f'folder of downloaded weights (default: ${CACHE_ENV}, else {DEFAULT_CACHE})')
    parser.add_argument('--fid_batch_size', type=positive_int, default=50,
                        help='images per Inception batch (default: 50)')
    parser.add_argument('--id_detector', default='hog', choices=DETECTORS,
                        help='dlib face detector for the identity metric: hog (default, fast) or cnn')
    parser.add_argument('--gpus', type=int, default=1, help='GPUs for FID (default: 1; 0: the CPU)')
    return parser


def methods_of(folders):
    """[(method name, folder)] of --results_dir values `NAME=FOLDER` or `FOLDER` (named by its last part)."""
    methods = []
    for value in folders:
        name, _, folder = value.rpartition('=') if '=' in value and not os.path.exists(value) else ('', '', value)
        name = name or os.path.basename(os.path.normpath(folder))
        if name in dict(methods):
            raise UserError(f"--results_dir: two folders are named {name!r}; name them as NAME=FOLDER")
        methods.append((name, folder))
    return methods


def csv_path(args, folder):
    return args.save_csv or os.path.join(folder, 'metrics.csv')


def output_plan(args, methods):
    """What the run reads (the folders, the Inception weights) and writes (a CSV per folder, the JSON, the table)."""
    plan = evaluation.pairs_plan([folder for _, folder in methods], args.gt_dir)
    plan.reads('--inception_weights', args.inception_weights)
    for _, folder in methods:
        plan.writes_file('--save_csv' if args.save_csv else '--save_csv (default)', csv_path(args, folder))
    plan.writes_file('--save_json', args.save_json)
    plan.writes_file('--save_table', args.save_table)
    return plan


def score_methods(args, methods, pairs, metrics, identity, fid_model, device):
    """({method: its summary}, images that failed): every folder scored, the table printed, the files written."""
    summaries, failures = {}, 0
    for name, folder in methods:
        summaries[name], failed = evaluation.score_folders(
            folder, args.gt_dir, pairs[name], metrics, csv_path(args, folder), identity, fid_model, device,
            args.fid_batch_size, args.psnr_channels, args.resize_result, args.y_quantization)
        failures += failed
    single = len(methods) == 1
    print(evaluation.markdown_table(summaries[methods[0][0]]) if single else evaluation.comparison_markdown(summaries))
    if args.save_table:
        evaluation.write_comparison_csv(summaries, args.save_table)
        log.info('table written to %s', args.save_table)
    if args.save_json:
        if single:
            evaluation.write_json(summaries[methods[0][0]], args.save_json)
        else:
            evaluation.write_json_by_method(summaries, args.save_json)
        log.info('means written to %s', args.save_json)
    return summaries, failures


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        metrics = evaluation.parse_metrics(args.metrics)
    except ValueError as err:
        raise UserError(str(err)) from err
    methods = methods_of(args.results_dir)
    if args.save_csv and len(methods) > 1:
        raise UserError('--save_csv names the per-pair CSV of one results folder; with several, each gets '
                        '<results_dir>/metrics.csv (--save_table writes the table comparing them)')
    plan = output_plan(args, methods)
    plan.check()
    paired = any(name in evaluation.PAIRED_METRICS for name in metrics)
    pairs = {name: pair_folders(folder, args.gt_dir, args.skip_unmatched, log) if paired else []
             for name, folder in methods}
    # Models before any long work: missing weights stop the run at once.
    device = select_device(args.gpus)[0] if 'fid' in metrics else None
    fid_model = (FIDInception(args.inception_weights or INCEPTION_WEIGHTS.fetch(args.weights_dir)).to(device)
                 if 'fid' in metrics else None)
    identity = FaceIdentity(args.id_detector) if 'id' in metrics else None

    with plan.claimed():
        summaries, failures = score_methods(args, methods, pairs, metrics, identity, fid_model, device)
    if failures:
        log.error('%d image(s) could not be evaluated (see above); the means leave them out', failures)
    return 1 if failures else 0


if __name__ == '__main__':
    run(main)
