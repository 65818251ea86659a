"""Learning curves of training runs as one PNG: every loss and the validation PSNR/SSIM over the
iterations, the bicubic baseline as a line beside each run's networks; several runs overlaid.

    python -m scripts.plot_training --runs train_log/RUN_A [train_log/RUN_B ...] [--labels A B] --out curves.png

A run is its log folder `<log_dir>/<name>/` (its TensorBoard events, or `loss_log.txt` when it
has none) or a `loss_log.txt` file. Prints the last validation of each run as a Markdown table.
Exit code 2 when a run cannot be read.
"""
if not __package__:  # run as `python scripts/NAME.py`: the project's packages import from the repository root only
    raise SystemExit('error: run it from the repository root as: python -m scripts.'
                     + __file__.replace('\\', '/').rsplit('/', 1)[-1][:-3] + ' ...')

import itertools
import math
import os

from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, MaxNLocator

from training.log_reader import BASELINE, RunLogError, read_run
from utils.atomic import atomic_write
from utils.cli import ArgumentParser, UserError, input_path, number_type, output_file, run
from utils.output_plan import OutputPlan

DEFAULT_OUT = 'training_curves.png'
PANEL_COLUMNS = 3
NETWORK_STYLES = ('-', '--', '-.')


def build_parser():
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--runs', nargs='+', required=True, type=input_path,
                        help='log folders <log_dir>/<name> or loss_log.txt files')
    parser.add_argument('--labels', nargs='+', default=None, help='one name per run (default: the folder names)')
    parser.add_argument('--out', type=output_file, default=None,
                        help=f'the PNG to write (default: <first run>/{DEFAULT_OUT})')
    parser.add_argument('--source', default='auto', choices=('auto', 'events', 'text'),
                        help='read TensorBoard events or the text log (default: events when there are some)')
    parser.add_argument('--smooth', type=number_type(float, low=0, below=1), default=0.6,
                        help="losses smoothed as TensorBoard's slider (0: raw; the raw curve stays, faint)")
    return parser


def run_label(path):
    path = os.path.normpath(path)
    return os.path.basename(os.path.dirname(path) if os.path.isfile(path) else path)


def load_runs(paths, labels=None, source='auto'):
    """[(label, {tag: {iteration: value}})] of the runs, in order."""
    labels = labels or [run_label(path) for path in paths]
    if len(labels) != len(paths):
        raise UserError(f'--labels gives {len(labels)} names for {len(paths)} runs; give one per run')
    runs = []
    for label, path in zip(labels, paths):
        try:
            scalars = read_run(path, source)
        except (RunLogError, OSError) as err:
            raise UserError(str(err)) from err
        if not any(tag.startswith(('loss/', 'val/')) for tag in scalars):
            raise UserError(f'{path}: no losses or validation scores logged yet')
        runs.append((label, scalars))
    return runs


def series(values):
    """{iteration: value} -> (iterations, values) in iteration order."""
    steps = sorted(values)
    return steps, [values[step] for step in steps]


def smoothed(values, weight):
    """TensorBoard's smoothing: an exponential moving average, debiased at the start."""
    result, average = [], 0.0
    for count, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        result.append(average / (1 - weight ** count))
    return result


def panels(runs):
    """[(title, tag prefix)]: one panel per loss, then PSNR and SSIM when validated."""
    tags = {tag for _, scalars in runs for tag in scalars}
    loss_panels = [(tag[5:], tag) for tag in sorted(tags) if tag.startswith('loss/')]
    val_panels = [(title, f'val/{metric}_') for metric, title in (('PSNR', 'validation PSNR (dB)'),
                                                                   ('SSIM', 'validation SSIM'))
                  if any(tag.startswith(f'val/{metric}_') for tag in tags)]
    return loss_panels + val_panels


def _plot_loss(ax, runs, tag, smooth):
    positive = True
    for index, (label, scalars) in enumerate(runs):
        if tag not in scalars:
            continue
        steps, values = series(scalars[tag])
        positive = positive and min(values) > 0
        color = f'C{index}'
        if smooth:
            ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
        ax.plot(steps, smoothed(values, smooth), color=color, label=label)
    if positive:
        ax.set_yscale('log')
        ax.yaxis.set_major_formatter(FormatStrFormatter('%g'))
        ax.yaxis.set_minor_formatter(FormatStrFormatter('%g'))


def _plot_validation(ax, runs, prefix):
    for index, (label, scalars) in enumerate(runs):
        color = f'C{index}'
        networks = sorted(tag for tag in scalars if tag.startswith(prefix) and not tag.endswith(f'_{BASELINE}'))
        for style, tag in zip(itertools.cycle(NETWORK_STYLES), networks):
            steps, values = series(scalars[tag])
            ax.plot(steps, values, style, color=color, marker='o', markersize=3,
                    label=f'{label} {tag[len(prefix):]}')
        baseline = scalars.get(f'{prefix}{BASELINE}')
        if baseline:
            ax.axhline(series(baseline)[1][-1], color=color, linestyle=':', label=f'{label} {BASELINE}')


def plot(runs, smooth=0.6):
    """One matplotlib Figure: a panel per loss, then validation PSNR and SSIM."""
    chosen = panels(runs)
    columns = min(PANEL_COLUMNS, len(chosen))
    rows = math.ceil(len(chosen) / columns)
    figure = Figure(figsize=(5 * columns, 3.6 * rows), layout='constrained')
    for number, (title, tag) in enumerate(chosen, start=1):
        ax = figure.add_subplot(rows, columns, number)
        if tag.startswith('loss/'):
            _plot_loss(ax, runs, tag, smooth)
        else:
            _plot_validation(ax, runs, tag)
        ax.set_title(title)
        ax.set_xlabel('iteration')
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize='small')
    return figure


def save_figure(figure, path):
    """Write the PNG atomically, so an interrupted run leaves no half picture."""
    with atomic_write(path) as handle:
        figure.savefig(handle, format='png', dpi=100)


def last_validation(scalars):
    """{network: (iteration, PSNR, SSIM, bicubic PSNR, bicubic SSIM)} at each network's last validation."""
    rows = {}
    baseline_psnr, baseline_ssim = (scalars.get(f'val/{metric}_{BASELINE}', {}) for metric in ('PSNR', 'SSIM'))
    for tag in sorted(scalars):
        if tag.startswith('val/PSNR_') and not tag.endswith(f'_{BASELINE}'):
            name = tag[len('val/PSNR_'):]
            step = max(scalars[tag])
            rows[name] = (step, scalars[tag][step], scalars.get(f'val/SSIM_{name}', {}).get(step),
                          baseline_psnr.get(step), baseline_ssim.get(step))
    return rows


def _cell(value, digits):
    return 'n/a' if value is None else f'{value:.{digits}f}'


def validation_table(runs):
    """The last validation of each run and network, with the bicubic baseline and the gain, as Markdown."""
    lines = ['| run | network | iteration | PSNR (dB) | SSIM | bicubic PSNR | bicubic SSIM | gain (dB) |',
             '|---|---|---:|---:|---:|---:|---:|---:|']
    for label, scalars in runs:
        for name, (step, psnr, ssim, base_psnr, base_ssim) in last_validation(scalars).items():
            gain = None if base_psnr is None else psnr - base_psnr
            lines.append(f'| {label} | {name} | {step} | {_cell(psnr, 4)} | {_cell(ssim, 4)} | '
                         f'{_cell(base_psnr, 4)} | {_cell(base_ssim, 4)} | {_cell(gain, 2)} |')
    return '\n'.join(lines) if len(lines) > 2 else None


def main(argv=None):
    args = build_parser().parse_args(argv)
    runs = load_runs(args.runs, args.labels, args.source)
    first = args.runs[0]
    out = args.out or os.path.join(os.path.dirname(first) if os.path.isfile(first) else first, DEFAULT_OUT)
    plan = OutputPlan()
    for path in args.runs:
        plan.reads('--runs', path, lambda path: not path.endswith('.png'))  # logs and events, not grids
    plan.writes_file('--out', out)
    plan.check()
    with plan.claimed():
        save_figure(plot(runs, args.smooth), out)
    table = validation_table(runs)
    if table:
        print(table)
    print(f'learning curves written to {out}')
    return 0


if __name__ == '__main__':
    run(main)
