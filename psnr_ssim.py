"""PSNR and SSIM of a results folder against its ground truth, as in the paper's tables.

    python psnr_ssim.py --results_dir R --gt_dir G

The original project's script name; the same code as `scripts/evaluate.py --metrics psnr,ssim`
(the published protocol by default: Y truncated to uint8, Gaussian-window SSIM; pairs matched by
file name). Prints the means and the protocol as Markdown.
"""
from metrics import folder_scores as evaluation
from metrics.pairing import pair_folders
from utils.cli import ArgumentParser, output_file, run
from utils.progress import logging_redirect

METRICS = ('psnr', 'ssim')


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    evaluation.add_pair_arguments(parser)
    parser.add_argument('--save_csv', type=output_file, default=None, help='also write the per-pair scores here')
    args = parser.parse_args(argv)
    plan = evaluation.pairs_plan([args.results_dir], args.gt_dir)
    plan.writes_file('--save_csv', args.save_csv)
    plan.check()

    pairs = pair_folders(args.results_dir, args.gt_dir, args.skip_unmatched, evaluation.log)
    with plan.claimed(), logging_redirect():
        rows = evaluation.evaluate_pairs(pairs, METRICS, args.psnr_channels, args.resize_result,
                                         y_quantization=args.y_quantization)
        if args.save_csv:
            evaluation.write_csv(rows, args.save_csv)
    summary = evaluation.summarize(rows, METRICS, psnr_channels=args.psnr_channels,
                                   y_quantization=args.y_quantization)
    print(evaluation.markdown_table(summary))
    return 1 if summary['failed_pairs'] else 0


if __name__ == '__main__':
    run(main)
