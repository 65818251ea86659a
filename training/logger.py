"""Training logs: TensorBoard scalars and image grids (tensorboardX), console lines, a text log,
validation face grids as PNG files.

A new run whose log folder already exists archives it (renamed with a time stamp) instead of
writing over it; a resumed run appends, and both TensorBoard and `training.log_reader` drop what the
interrupted run logged after its last checkpoint (purge_step; a `resumed at iteration N` line).
"""
import datetime
import logging
import os
import time

import torch
import torchvision
from tensorboardX import SummaryWriter

from training.log_reader import BASELINE
from utils.image_io import save_rgb

log = logging.getLogger('train')
GRID_ROWS = 4


def archive_old_logs(log_dir):
    """Rename an existing non-empty `log_dir` to `<log_dir>_archived_<time stamp>` (a new run's logs start in an
    empty folder: train.py's output plan does it once it holds the folder); returns the new name."""
    if not os.path.isdir(log_dir) or not os.listdir(log_dir):
        return None
    stamp = time.strftime('%Y%m%d-%H%M%S')
    archived, count = f'{log_dir}_archived_{stamp}', 1
    while os.path.exists(archived):
        count += 1
        archived = f'{log_dir}_archived_{stamp}_{count}'
    os.rename(log_dir, archived)
    return archived


def format_duration(seconds):
    return str(datetime.timedelta(seconds=int(seconds)))


def image_grid(visuals, rows=GRID_ROWS):
    """One row per sample, one column per visual (e.g. LR | SR | EMA SR | HR), as CHW in [0, 1]."""
    columns = [images[:rows].detach().float().cpu() for images in visuals.values()]
    tiles = torch.stack(columns, dim=1).flatten(0, 1)
    return torchvision.utils.make_grid((tiles.clamp(-1, 1) + 1) / 2, nrow=len(columns), padding=2)


def resume_line(iteration):
    return f'resumed at iteration {iteration}'


def validation_line(iteration, metrics):
    """`validation at iteration N: PSNR_G 27.1 SSIM_G 0.8 ... | G +1.23 dB over bicubic`."""
    values = ' '.join(f'{name} {value:.4f}' for name, value in metrics.items())
    reference = metrics.get(f'PSNR_{BASELINE}')
    gains = [f'{name[5:]} {value - reference:+.2f} dB' for name, value in metrics.items()
             if reference is not None and name.startswith('PSNR_') and name != f'PSNR_{BASELINE}']
    return f'validation at iteration {iteration}: {values}' + (
        f" | {', '.join(gains)} over {BASELINE}" if gains else '')


def validation_grid_path(log_dir, iteration):
    return os.path.join(log_dir, f'val_grid_{iteration}.png')


class TrainLogger:
    """Writes only where `enabled` (the main process); every method is a no-op elsewhere.

    `resume_iteration`: the iteration of the checkpoint a resumed run starts from; what was logged
    up to it is kept, what the interrupted run logged after it is dropped.
    """

    def __init__(self, log_dir, resume_iteration=None, enabled=True):
        self.enabled = enabled
        if not enabled:
            return
        os.makedirs(log_dir, exist_ok=True)
        self.log_dir = log_dir
        start = 0 if resume_iteration is None else resume_iteration + 1
        # The start in the file name keeps a resume's events apart from (and sorted after) those of
        # a run begun the same second: tensorboardX names files by the second and opens them 'wb'.
        self.writer = SummaryWriter(log_dir, purge_step=None if resume_iteration is None else start,
                                    filename_suffix=f'.from{start:010d}')
        self.text_log = open(os.path.join(log_dir, 'loss_log.txt'), 'a', encoding='utf-8')
        if resume_iteration is not None:
            self._write(resume_line(resume_iteration))

    def scalars(self, iteration, values, group):
        """`values` as TensorBoard scalars `<group>/<name>`."""
        if self.enabled:
            for name, value in values.items():
                self.writer.add_scalar(f'{group}/{name}', value, iteration)

    def images(self, iteration, visuals):
        if self.enabled:
            self.writer.add_image(f"images/{'-'.join(visuals)}", image_grid(visuals), iteration)

    def _write(self, text):
        self.text_log.write(text + '\n')
        self.text_log.flush()

    def message(self, text):
        """A console line, also appended to `loss_log.txt`."""
        if self.enabled:
            log.info(text)
            self._write(text)

    def validation(self, iteration, metrics, grid):
        """Validation scores (scalars `val/<name>` and a line) and the face grid, in TensorBoard and
        as `val_grid_<iteration>.png`."""
        if self.enabled:
            self.scalars(iteration, metrics, 'val')
            self.message(validation_line(iteration, metrics))
            self.writer.add_image('val/grid', grid, iteration, dataformats='HWC')
            save_rgb(grid, validation_grid_path(self.log_dir, iteration))

    def progress(self, epoch, total_epochs, iteration, losses, lrs, seconds_per_iter, eta_seconds):
        values = ' '.join(f'{name} {value:.4g}' for name, value in {**losses, **lrs}.items())
        self.message(f'epoch {epoch}/{total_epochs} iter {iteration} | {values} | '
                     f'{seconds_per_iter:.3f} s/it | ETA {format_duration(eta_seconds)}')

    def close(self):
        if self.enabled:
            self.writer.close()
            self.text_log.close()
