"""Scoring a results folder against its ground truth: per-pair rows, folder means, and the
CSV / JSON / Markdown reports shared by `scripts/evaluate.py` and `psnr_ssim.py`.

Means: PSNR over the pairs with a finite PSNR (identical pairs, PSNR inf, are counted apart;
the mean is inf only when every pair is identical); identity over the pairs whose ground truth
has a face. In JSON, inf is written as the string "inf" and an unmeasured metric as null.
"""
import csv
import json
import logging
import math
import os

import numpy as np
from PIL import Image

from metrics import fid, psnr_ssim
from metrics.pairing import list_folder_images
from utils.atomic import atomic_write
from utils.cli import UserError, input_path
from utils.image_io import ImageReadError, is_image_file, read_rgb_array
from utils.output_plan import OutputPlan
from utils.progress import logging_redirect, progress

log = logging.getLogger('evaluate')

METRICS = ('psnr', 'ssim', 'fid', 'id')
PAIRED_METRICS = ('psnr', 'ssim', 'id')
CSV_COLUMNS = ('name', 'result', 'gt', 'psnr', 'ssim', 'id_cos', 'id_dist', 'note')


class PairError(Exception):
    """One pair cannot be compared (unreadable file, other size); the run goes on without it."""


def parse_metrics(text):
    """'psnr,ssim' -> ('psnr', 'ssim') in the canonical order; ValueError naming unknown ones."""
    asked = [name.strip().lower() for name in text.split(',') if name.strip()]
    unknown = sorted(set(asked) - set(METRICS))
    if unknown or not asked:
        raise ValueError(f"--metrics {text!r}: expected a comma-separated list of {', '.join(METRICS)}"
                         + (f"; unknown: {', '.join(unknown)}" if unknown else ''))
    return tuple(name for name in METRICS if name in asked)


def load_pair(pair, resize_result=False):
    """(result, gt) uint8 RGB arrays of one pair, the result resized (bicubic) to the ground
    truth's size when `resize_result`; PairError when unreadable or of another size."""
    try:
        result, gt = read_rgb_array(pair.result_path), read_rgb_array(pair.gt_path)
    except ImageReadError as err:
        raise PairError(str(err)) from err
    if result.shape != gt.shape:
        height, width = gt.shape[:2]
        if not resize_result:
            raise PairError(f'{pair.result_path}: result is {result.shape[1]}x{result.shape[0]} but its '
                            f'ground truth {pair.gt_path} is {width}x{height}; pass --resize_result to '
                            'resize results to the ground-truth size (bicubic)')
        result = np.asarray(Image.fromarray(result).resize((width, height), Image.BICUBIC))
    return result, gt


def score_pair(result, gt, metrics, psnr_channels='y', identity=None,
               y_quantization=psnr_ssim.PUBLISHED_Y_QUANTIZATION):
    """{metric column: value} of one pair; 'note' says when the ground truth has no face."""
    row = {}
    if 'psnr' in metrics:
        row['psnr'] = psnr_ssim.psnr(result, gt, psnr_channels, y_quantization)
    if 'ssim' in metrics:
        try:
            row['ssim'] = psnr_ssim.ssim(result, gt, y_quantization)
        except ValueError as err:
            raise PairError(str(err)) from err
    if 'id' in metrics:
        scores = identity.compare(result, gt)
        if scores is None:
            row['note'] = 'no face found in the ground truth'
        else:
            row['id_cos'], row['id_dist'] = scores
    return row


def evaluate_pairs(pairs, metrics, psnr_channels='y', resize_result=False, identity=None,
                   y_quantization=psnr_ssim.PUBLISHED_Y_QUANTIZATION):
    """One row per pair (`CSV_COLUMNS`); a pair that fails is logged and kept with its error as note."""
    rows = []
    for pair in progress(pairs, desc='/'.join(m for m in metrics if m in PAIRED_METRICS), unit='pair'):
        row = {'name': pair.name, 'result': pair.result_path, 'gt': pair.gt_path}
        try:
            row.update(score_pair(*load_pair(pair, resize_result), metrics, psnr_channels, identity,
                                  y_quantization))
        except PairError as err:
            log.error('%s (skipped)', err)
            row.update(note=f'error: {err}', failed=True)
        rows.append(row)
    return rows


def folder_image_paths(folder, flag):
    return [os.path.join(folder, rel_path) for rel_path in list_folder_images(folder, flag)]


def evaluate_fid(results_dir, gt_dir, model, device, batch_size=50):
    """(FID, images used per side, [(path, error)]) between every image of the two folders
    (subfolders too), unpaired, as pytorch-fid compares two folders."""
    result_paths = folder_image_paths(results_dir, '--results_dir')
    gt_paths = folder_image_paths(gt_dir, '--gt_dir')
    result_features, result_errors = fid.inception_features(model, result_paths, device, batch_size,
                                                            desc='FID results')
    gt_features, gt_errors = fid.inception_features(model, gt_paths, device, batch_size,
                                                    desc='FID ground truth')
    for _, message in result_errors + gt_errors:
        log.error('%s (left out of FID)', message)
    if min(len(result_features), len(gt_features)) < 2:
        raise UserError(f'FID needs at least 2 readable images per folder, found '
                        f'{len(result_features)} results and {len(gt_features)} ground truths')
    if min(len(result_features), len(gt_features)) < fid.FEATURE_DIMS:
        log.warning('FID over fewer than %d images per folder: the covariances are rank-deficient, so the '
                    'value is only comparable with FIDs over the same numbers of images', fid.FEATURE_DIMS)
    value = fid.fid_from_features(result_features, gt_features)
    return value, (len(result_features), len(gt_features)), result_errors + gt_errors


def _mean(values):
    return float(np.mean(values)) if values else None


def summarize(rows, metrics, fid_value=None, fid_counts=(0, 0), psnr_channels='y',
              y_quantization=psnr_ssim.PUBLISHED_Y_QUANTIZATION):
    """Folder means and counts, keys `psnr`, `ssim`, `fid`, `id_cos` (+ `id_dist` and counts),
    and the PSNR/SSIM protocol (`psnr_channels`, `y_quantization`, `protocol` in words)."""
    scored = [row for row in rows if not row.get('failed')]
    psnrs = [row['psnr'] for row in scored if 'psnr' in row]
    finite_psnrs = [value for value in psnrs if math.isfinite(value)]
    psnr_mean = _mean(finite_psnrs) if finite_psnrs else (math.inf if psnrs else None)
    return {
        'psnr': psnr_mean,
        'ssim': _mean([row['ssim'] for row in scored if 'ssim' in row]),
        'fid': fid_value,
        'id_cos': _mean([row['id_cos'] for row in scored if 'id_cos' in row]),
        'id_dist': _mean([row['id_dist'] for row in scored if 'id_dist' in row]),
        'metrics': list(metrics),
        'psnr_channels': psnr_channels,
        'y_quantization': y_quantization,
        'protocol': psnr_ssim.describe_protocol(psnr_channels, y_quantization),
        'pairs': len(scored),
        'failed_pairs': len(rows) - len(scored),
        'psnr_identical': len(psnrs) - len(finite_psnrs),
        'id_no_face': sum(1 for row in scored if 'id' in metrics and 'id_cos' not in row),
        'fid_images': list(fid_counts) if 'fid' in metrics else None,
    }


def score_folders(results_dir, gt_dir, pairs, metrics, csv_path=None, identity=None, fid_model=None, device=None,
                  fid_batch_size=50, psnr_channels='y', resize_result=False,
                  y_quantization=psnr_ssim.PUBLISHED_Y_QUANTIZATION):
    """(summary, images that could not be scored): the paired metrics over `pairs` (their rows
    written to `csv_path` when given), and with 'fid' in `metrics` FID of the two folders as wholes."""
    rows, fid_value, fid_counts, fid_errors = [], None, (0, 0), []
    with logging_redirect():
        if pairs:
            rows = evaluate_pairs(pairs, metrics, psnr_channels, resize_result, identity, y_quantization)
            if csv_path:
                write_csv(rows, csv_path)
                log.info('per-pair scores written to %s', csv_path)
        if 'fid' in metrics:
            fid_value, fid_counts, fid_errors = evaluate_fid(results_dir, gt_dir, fid_model, device, fid_batch_size)
    summary = summarize(rows, metrics, fid_value, fid_counts, psnr_channels, y_quantization)
    return summary, summary['failed_pairs'] + len(fid_errors)


def _format(value, digits=4):
    if value is None:
        return 'n/a'
    return 'inf' if math.isinf(value) else f'{value:.{digits}f}'


def markdown_table(summary):
    """The means as a Markdown table, one metric per row, with what each mean is over, then the
    PSNR/SSIM protocol when they were measured."""
    metrics, pairs = summary['metrics'], summary['pairs']
    lines = ['| metric | mean | over |', '|---|---:|---|']
    if 'psnr' in metrics:
        over = f'{pairs} pairs'
        if summary['psnr_identical']:
            over += f" ({summary['psnr_identical']} identical pairs, PSNR inf, not in the mean)"
        channels = f"Y {summary['y_quantization']}" if summary['psnr_channels'] == 'y' else 'RGB'
        lines.append(f"| PSNR ({channels}, dB) | {_format(summary['psnr'])} | {over} |")
    if 'ssim' in metrics:
        lines.append(f"| SSIM (Y {summary['y_quantization']}) | {_format(summary['ssim'])} | {pairs} pairs |")
    if 'fid' in metrics:
        n_results, n_gt = summary['fid_images']
        lines.append(f"| FID | {_format(summary['fid'])} | {n_results} results vs {n_gt} ground truths |")
    if 'id' in metrics:
        faces = pairs - summary['id_no_face']
        over = f'{faces} pairs' + (f" ({summary['id_no_face']} without a face found in the ground truth)"
                                   if summary['id_no_face'] else '')
        lines.append(f"| identity cosine similarity | {_format(summary['id_cos'])} | {over} |")
        lines.append(f"| identity distance (dlib, < 0.6 same person) | {_format(summary['id_dist'])} "
                     f"| {faces} pairs |")
    if 'psnr' in metrics or 'ssim' in metrics:
        lines += ['', f"PSNR/SSIM protocol: {summary['protocol']}."]
    return '\n'.join(lines)


def _csv_value(value):
    if isinstance(value, float):
        return 'inf' if math.isinf(value) else repr(value)
    return '' if value is None else value


def write_csv(rows, path):
    """One line per pair (`CSV_COLUMNS`); unmeasured cells empty, PSNR of identical images `inf`."""
    with atomic_write(path, 'w', newline='', encoding='utf-8') as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow([_csv_value(row.get(column)) for column in CSV_COLUMNS])


def json_safe(summary):
    """The summary with inf as the string "inf" (JSON has no infinity)."""
    return {key: ('inf' if isinstance(value, float) and math.isinf(value) else value)
            for key, value in summary.items()}


def write_json(summary, path):
    with atomic_write(path, 'w', encoding='utf-8') as handle:
        json.dump(json_safe(summary), handle, indent=2)


def write_json_by_method(summaries: dict[str, dict], path: str) -> None:
    """{method: means} of several results folders."""
    with atomic_write(path, 'w', encoding='utf-8') as handle:
        json.dump({method: json_safe(summary) for method, summary in summaries.items()}, handle, indent=2)


# (summary key, column title) of the one table comparing methods, for the metrics asked
COMPARISON_COLUMNS = {'psnr': ('psnr', 'PSNR (dB)'), 'ssim': ('ssim', 'SSIM'), 'fid': ('fid', 'FID'),
                      'id': ('id_cos', 'identity (cosine)')}


def comparison_rows(summaries: dict[str, dict]) -> list[list[str]]:
    """The table comparing methods: a header, then a row per method (its name, a column per metric measured)."""
    metrics = next(iter(summaries.values()))['metrics']
    columns = [COMPARISON_COLUMNS[name] for name in METRICS if name in metrics]
    rows = [['method', *(title for _, title in columns), 'pairs']]
    for method, summary in summaries.items():
        rows.append([method, *(_format(summary[key]) for key, _ in columns), str(summary['pairs'])])
    return rows


def comparison_markdown(summaries: dict[str, dict]) -> str:
    """`comparison_rows` as a Markdown table (numbers right-aligned), then the PSNR/SSIM protocol if measured."""
    header, *rows = comparison_rows(summaries)
    lines = ['| ' + ' | '.join(header) + ' |', '|---|' + '---:|' * (len(header) - 1)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    first = next(iter(summaries.values()))
    if 'psnr' in first['metrics'] or 'ssim' in first['metrics']:
        lines += ['', f"PSNR/SSIM protocol: {first['protocol']}."]
    return '\n'.join(lines)


def write_comparison_csv(summaries: dict[str, dict], path: str) -> None:
    """`comparison_rows` as CSV (unmeasured cells `n/a`)."""
    with atomic_write(path, 'w', newline='', encoding='utf-8') as handle:
        csv.writer(handle).writerows(comparison_rows(summaries))


def pairs_plan(results_dirs: list[str], gt_dir: str) -> OutputPlan:
    """The plan of an evaluation: it reads the images of the results folders and of the ground truth (what it
    writes, each command adds)."""
    plan = OutputPlan()
    for folder in results_dirs:
        plan.reads_folder('--results_dir', folder, is_image_file)
    plan.reads_folder('--gt_dir', gt_dir, is_image_file)
    return plan


def add_pair_arguments(parser, several=False):
    """The flags both evaluation commands share: the two folders, pairing and PSNR options (`several` result
    folders for scripts/evaluate.py)."""
    parser.add_argument('--results_dir', required=True, nargs='+' if several else None, type=input_path,
                        help='folders of results, one per method, as NAME=FOLDER or FOLDER (named by its last part)'
                             if several else 'folder of super-resolved images')
    parser.add_argument('--gt_dir', required=True, type=input_path, help='folder of ground-truth images (same names)')
    parser.add_argument('--psnr_channels', default='y', choices=psnr_ssim.PSNR_CHANNELS,
                        help="PSNR on the luminance Y (default, the paper's protocol) or on all RGB values")
    psnr_ssim.add_y_quantization_argument(parser)
    parser.add_argument('--skip_unmatched', action='store_true',
                        help='evaluate the matched pairs when some names are in only one folder')
    parser.add_argument('--resize_result', action='store_true',
                        help='resize results to the ground-truth size (bicubic) instead of failing')
    return parser
