"""Reproduce the published tables in one command: fetch the released models and test sets, run, score, compare.

    python -m scripts.reproduce                                 # the four models (`make reproduce`)
    python -m scripts.reproduce --models sparnet sparnet_light_attn3d --gpus 1
    python -m scripts.reproduce --test_dirs test_dirs/ --weights_dir weights/  # without internet

Fetches the selected released models and the release's test_dirs.tgz into the weights cache
(unpacked there safely, once), runs each model on its test set with test.py, scores the outputs
with the evaluation code of scripts/evaluate.py (PSNR/SSIM with the published protocol on Helen,
FID on CelebA-TestN, dlib identity similarity beside them), and prints one table, also written
to <out_dir>/table.md and table.json. A row whose score differs from the original README's
figure by more than TOLERANCES is flagged. Finished rows are kept in <out_dir>/rows/ and not
recomputed by a later run unless --recompute (or another --precision) is given.
Exit code: 0 when every row is complete and within tolerance, 1 when a row is flagged or some
images failed, 2 when the run could not start (download failed, test sets not found, bad flags).
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

import argparse
import datetime
import json
import logging
import math
import os
import shlex
import shutil
import time

from inference.face_folder import test_folder
from metrics import folder_scores as evaluation
from metrics.eval_sets import TEST_SETS, locate
from metrics.fid import INCEPTION_WEIGHTS, FIDInception
from metrics.identity import FaceIdentity
from metrics.pairing import match_by_name, pair_folders
from options.test_options import TestOptions
from utils.atomic import atomic_write
from utils.cli import UserError, cache_folder, input_path, output_folder, run
from utils.devices import PRECISIONS, check_precision, describe_device, select_device
from utils.image_io import list_images
from utils.output_plan import OutputPlan
from weights.archive import extract_archive
from weights.download import CACHE_ENV, DEFAULT_CACHE, cache_dir
from weights.released import RELEASED_MODELS, TEST_SETS_ARCHIVE

log = logging.getLogger('reproduce')

# How far a score may be from the original README's figure before its row is flagged. On the same
# weights and inputs our network matches the published one to ~1e-6 (relative), far below the
# figures' last digit; what can legitimately move them more is the software the authors ran: the
# PSNR/SSIM protocol's details (float instead of truncated Y moves them by ~0.007 dB and ~0.001, see
# the README), Pillow's bicubic enlargement of the LR faces, libjpeg's decoding of JPEG inputs and
# encoding of JPEG outputs (which FID sees), GPU arithmetic. The tolerances are a few times those
# effects and the figures' rounding. They are for fp32: bf16/fp16 outputs differ by ~1 % and may be
# flagged.
TOLERANCES = {'psnr': 0.05, 'ssim': 0.002, 'fid': 0.5}
METRIC_LABELS = {'psnr': 'PSNR', 'ssim': 'SSIM', 'fid': 'FID'}
METRIC_UNITS = {'psnr': ' dB', 'ssim': '', 'fid': ''}
DIGITS = {'psnr': 2, 'ssim': 4, 'fid': 2}
DEFAULT_OUT_DIR = 'reproduce_results'
TABLE_COLUMNS = ('model', 'test set', 'metric', 'paper', 'released (original README)', 'this run', 'identity',
                 'device', 'precision', 'seconds', 'vs released')


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', default=list(RELEASED_MODELS), choices=list(RELEASED_MODELS),
                        metavar='NAME',
                        help=f"released models to reproduce (default: all: {' '.join(RELEASED_MODELS)})")
    parser.add_argument('--precision', default='fp32', choices=tuple(PRECISIONS),
                        help='inference precision (the tolerances are for fp32)')
    parser.add_argument('--gpus', type=int, default=1,
                        help='GPUs to use (default: 1, the CPU when there is none; 0: the CPU)')
    parser.add_argument('--batch_size', type=int, default=None,
                        help='faces per batch (default: ' + ', '.join(f'{s.batch_size} on {s.label}'
                                                                     for s in TEST_SETS.values()) + ')')
    parser.add_argument('--weights_dir', type=cache_folder, default=None,
                        help=f'folder of downloaded files: weights and test_dirs.tgz (default: ${CACHE_ENV}, else '
                             f'{DEFAULT_CACHE})')
    parser.add_argument('--test_dirs', type=input_path, default=None,
                        help='folder of the test sets, already unpacked (default: the release\'s test_dirs.tgz, '
                             'downloaded into the weights folder and unpacked there)')
    for test_set in TEST_SETS.values():
        parser.add_argument(f'--{test_set.input_flag}', type=input_path, default=None,
                            help=f'{test_set.label} inputs (default: found in --test_dirs, e.g. '
                                 f'{test_set.assumed_inputs})')
        parser.add_argument(f'--{test_set.gt_flag}', type=input_path, default=None,
                            help=f'{test_set.label} ground truth (default: found in --test_dirs, e.g. '
                                 f'{test_set.assumed_gt})')
    parser.add_argument('--out_dir', type=output_folder, default=DEFAULT_OUT_DIR,
                        help=f'outputs, per-row results and the table (default: {DEFAULT_OUT_DIR})')
    parser.add_argument('--recompute', action='store_true', help='recompute rows already finished in --out_dir')
    parser.add_argument('--print_folders', action='store_true',
                        help='print the test-set folders found as shell assignments (test.sh reads them) and exit')
    return parser


class Paths:
    """Where one model's outputs, per-pair scores and finished row go below --out_dir."""

    def __init__(self, out_dir, model):
        self.outputs = os.path.join(out_dir, 'outputs', model.name)
        self.pairs_csv = os.path.join(out_dir, 'rows', f'{model.name}_pairs.csv')
        self.row = os.path.join(out_dir, 'rows', f'{model.name}.json')


def write_json(data, path):
    with atomic_write(path, 'w', encoding='utf-8') as handle:
        json.dump(data, handle, indent=2)


def finished_row(path, precision):
    """The row saved at `path` when it is complete and of this precision, else None (it is recomputed)."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as handle:
            row = json.load(handle)
    except (OSError, ValueError) as err:
        log.warning('%s: unreadable (%s): recomputing that row', path, err)
        return None
    if not row.get('complete') or row.get('precision') != precision:
        reason = 'incomplete' if not row.get('complete') else f"computed in {row.get('precision')}"
        log.info('%s: %s, recomputing that row', path, reason)
        return None
    log.info('%s: finished %s, kept (--recompute to compute it again)', path, row.get('finished'))
    return row


def unpacked_release_archive(weights_dir):
    """The folder of the release's test_dirs.tgz unpacked in the weights folder (downloaded and unpacked once)."""
    target = os.path.join(cache_dir(weights_dir), 'test_dirs')
    if not os.path.isdir(target):
        archive = TEST_SETS_ARCHIVE.fetch(weights_dir)
        log.info('unpacking %s into %s', archive, target)
        extract_archive(archive, target, TEST_SETS_ARCHIVE.file_name)
    return target


def locate_test_sets(names, args, fetch=True):
    """{test set name: EvalSetFolders}: the folders given by flag, the others found in --test_dirs (or, when
    `fetch`, in the release's archive)."""
    found, root = {}, args.test_dirs
    for name in names:
        test_set = TEST_SETS[name]
        inputs, gt = getattr(args, test_set.input_flag), getattr(args, test_set.gt_flag)
        if not (inputs and gt) and root is None and fetch:
            root = unpacked_release_archive(args.weights_dir)
        found[name] = folders = locate(test_set, root, inputs, gt)
        log.info('%s: %d inputs in %s, %d ground truths in %s', test_set.label, folders.input_images,
                 folders.inputs, folders.gt_images, folders.gt)
        if folders.input_images != test_set.expected_images:
            log.warning('%s: %d inputs found, the published set has %d: the scores will not compare with the '
                        "published ones", test_set.label, folders.input_images, test_set.expected_images)
    return found


def shell_assignments(found):
    """`HELEN_LR='...'` lines (test.sh's variables: the flags upper-cased) for the folders found."""
    lines = []
    for folders in found.values():
        lines.append(f'{folders.test_set.input_flag.upper()}={shlex.quote(folders.inputs)}')
        lines.append(f'{folders.test_set.gt_flag.upper()}={shlex.quote(folders.gt)}')
    return '\n'.join(lines)


def run_test_py(argv):
    """test.py's run on `argv` in this process."""
    return test_folder(TestOptions().parse(argv))


class Scorers:
    """The scoring networks, built once for all rows: FID's Inception (when a row needs it) and dlib's."""

    def __init__(self, models, device, weights_dir):
        needs_fid = any('fid' in model.published.metrics for model in models)
        self.fid = FIDInception(INCEPTION_WEIGHTS.fetch(weights_dir)).to(device) if needs_fid else None
        self.identity = FaceIdentity()


def compare_with_released(published, values):
    """({metric: this run - released}, flag text or ''): a metric is flagged when missing or off by
    more than its tolerance."""
    differences, problems = {}, []
    for metric, released in zip(published.metrics, published.released):
        value = values.get(metric)
        if value is None:
            problems.append(f'{METRIC_LABELS[metric]} not measured')
            continue
        differences[metric] = value - released
        if abs(differences[metric]) > TOLERANCES[metric]:
            problems.append(f'{METRIC_LABELS[metric]} {differences[metric]:+.{DIGITS[metric]}f}'
                            f'{METRIC_UNITS[metric]} (tolerance {TOLERANCES[metric]})')
    return evaluation.json_safe(differences), '; '.join(problems)


def compute_row(model, folders, args, device, gpu_ids, scorers):
    """Run `model` on its test set, score it, save its row (atomically) and return it."""
    published, test_set = model.published, folders.test_set
    paths = Paths(args.out_dir, model)
    shutil.rmtree(paths.outputs, ignore_errors=True)  # outputs of an earlier run must not be scored
    batch_size = args.batch_size or test_set.batch_size
    argv = ['--gpus', str(len(gpu_ids)), '--name', model.name, '--pretrain_model_path', model.name,
            '--dataset_name', 'single', '--dataroot', folders.inputs, '--save_as_dir', paths.outputs,
            '--batch_size', str(batch_size), '--precision', args.precision]
    if args.weights_dir:
        argv += ['--weights_dir', args.weights_dir]
    log.info('%s on %s: %s', model.name, test_set.label, ' '.join(argv))
    start = time.perf_counter()
    test_failed = run_test_py(argv) != 0
    test_seconds = time.perf_counter() - start

    metrics = published.metrics + ('id',)
    if 'fid' in published.metrics:  # FID compares folders as wholes; identity needs pairs of the same name
        pairs = match_by_name(paths.outputs, folders.gt).pairs
        if not pairs:
            log.info('%s: no output has a ground truth of the same name: no identity similarity', model.name)
    else:
        pairs = pair_folders(paths.outputs, folders.gt, skip_unmatched=test_failed, log=evaluation.log)
    summary, score_failures = evaluation.score_folders(
        paths.outputs, folders.gt, pairs, metrics, paths.pairs_csv, scorers.identity, scorers.fid, device)
    seconds = time.perf_counter() - start

    values = {metric: summary[metric] for metric in published.metrics}
    differences, flag = compare_with_released(published, values)
    outputs = len(list_images(paths.outputs)) if os.path.isdir(paths.outputs) else 0
    row = {
        'model': model.name, 'title': published.title, 'test_set': test_set.label, 'metrics': list(published.metrics),
        'paper': dict(zip(published.metrics, published.paper)) if published.paper else None,
        'released': dict(zip(published.metrics, published.released)),
        'this_run': evaluation.json_safe(values), 'difference_from_released': differences,
        'tolerance': {metric: TOLERANCES[metric] for metric in published.metrics},
        'flagged': bool(flag), 'flag': flag,
        'identity': {'id_cos': summary['id_cos'], 'id_dist': summary['id_dist'],
                     'pairs': summary['pairs'] - summary['id_no_face'], 'pairs_without_face': summary['id_no_face']},
        'protocol': summary['protocol'] if 'psnr' in published.metrics else None,
        'fid_images': summary['fid_images'] if 'fid' in published.metrics else None,
        'images': {'inputs': folders.input_images, 'expected': test_set.expected_images, 'outputs': outputs,
                   'ground_truth': folders.gt_images, 'not_scored': score_failures},
        'folders': {'inputs': folders.inputs, 'ground_truth': folders.gt, 'outputs': os.path.abspath(paths.outputs)},
        'device': describe_device(device, gpu_ids), 'precision': args.precision, 'batch_size': batch_size,
        'seconds': round(seconds, 1), 'seconds_test': round(test_seconds, 1),
        'complete': not test_failed and not score_failures and outputs == folders.input_images,
        'finished': datetime.datetime.now().isoformat(timespec='seconds'),
    }
    write_json(row, paths.row)
    log.info('%s: row written to %s', model.name, paths.row)
    return row


def _score(metric, value):
    if value is None:
        return 'n/a'
    return 'inf' if value == 'inf' or math.isinf(value) else f'{value:.{DIGITS[metric]}f}'


def _scores(metrics, values):
    return ' / '.join(_score(m, values.get(m)) for m in metrics) if values else '–'



def verdict(row):
    if not row['complete']:
        return f"**incomplete**: {row['images']['outputs']} of {row['images']['inputs']} outputs, " \
               f"{row['images']['not_scored']} not scored"
    return f"**flagged**: {row['flag']}" if row['flagged'] else 'ok'


def markdown_table(rows):
    """The table (one row per model) and the notes that say how it was measured."""
    lines = ['| ' + ' | '.join(TABLE_COLUMNS) + ' |', '|' + '---|' * len(TABLE_COLUMNS)]
    for row in rows:
        metrics = row['metrics']
        identity = row['identity']['id_cos']
        cells = [row['title'], row['test_set'], ' / '.join(METRIC_LABELS[m] for m in metrics),
                 _scores(metrics, row['paper']), _scores(metrics, row['released']), _scores(metrics, row['this_run']),
                 '–' if identity is None else f'{identity:.4f}', row['device'], row['precision'],
                 f"{row['seconds']:.1f}", verdict(row)]
        lines.append('| ' + ' | '.join(cells) + ' |')
    tolerances = ', '.join(f'{METRIC_LABELS[m]} {t}{METRIC_UNITS[m]}' for m, t in TOLERANCES.items())
    lines += ['', f'Flagged: a score further from the released figure than its tolerance ({tolerances}).',
              'identity: mean cosine similarity of dlib face descriptors of each output and its ground truth of '
              'the same name (–: no such pairs).']
    protocols = sorted({row['protocol'] for row in rows if row['protocol']})
    lines += [f'PSNR/SSIM protocol: {protocol}.' for protocol in protocols]
    for row in rows:
        if row['fid_images']:
            lines.append(f"FID of {row['title']}: pytorch-fid's Inception, {row['fid_images'][0]} outputs vs "
                         f"{row['fid_images'][1]} ground truths.")
    return '\n'.join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    models = [model for name, model in RELEASED_MODELS.items() if name in args.models]
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f'--batch_size must be at least 1, got {args.batch_size}')
    if args.print_folders:
        print(shell_assignments(locate_test_sets(TEST_SETS, args, fetch=False)))
        return 0
    device, gpu_ids = select_device(args.gpus)
    try:
        check_precision(device, args.precision)
    except ValueError as err:
        raise UserError(f'--precision {args.precision}: {err}') from err
    plan = OutputPlan()
    for flag in ('test_dirs', *(name for test_set in TEST_SETS.values() for name in (test_set.input_flag,
                                                                                      test_set.gt_flag))):
        plan.reads(f'--{flag}', getattr(args, flag))
    plan.writes_folder('--out_dir', args.out_dir)
    plan.check()
    with plan.claimed():
        return reproduce(args, models, device, gpu_ids)


def reproduce(args, models, device, gpu_ids):
    """The rows of `models` (those finished earlier kept), the table printed and written; returns the exit code."""
    rows = {} if args.recompute else {
        model.name: row for model in models if (row := finished_row(Paths(args.out_dir, model).row, args.precision))}
    todo = [model for model in models if model.name not in rows]
    if todo:  # everything is fetched and checked before the first long computation
        found = locate_test_sets(dict.fromkeys(model.published.test_set for model in todo), args)
        for model in todo:
            model.remote.fetch(args.weights_dir)
        scorers = Scorers(todo, device, args.weights_dir)
        for index, model in enumerate(todo, 1):
            log.info('row %d of %d: %s', index, len(todo), model.name)
            rows[model.name] = compute_row(model, found[model.published.test_set], args, device, gpu_ids, scorers)

    ordered = [rows[model.name] for model in models]
    table = markdown_table(ordered)
    with atomic_write(os.path.join(args.out_dir, 'table.md'), 'w', encoding='utf-8') as handle:
        handle.write(table + '\n')
    write_json({'rows': ordered, 'tolerances': TOLERANCES}, os.path.join(args.out_dir, 'table.json'))
    print(table)
    log.info('table written to %s and %s', os.path.join(args.out_dir, 'table.md'),
             os.path.join(args.out_dir, 'table.json'))
    return 0 if all(row['complete'] and not row['flagged'] for row in ordered) else 1


if __name__ == '__main__':
    run(main)
