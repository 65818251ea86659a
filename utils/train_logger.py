"""Training logs: TensorBoard scalars and image grids (tensorboardX), console lines, a text log.

A new run whose log folder already exists archives it (renamed with a time stamp) instead of
writing over it; a resumed run appends, and TensorBoard drops the events the interrupted run
wrote after its last checkpoint (purge_step).
"""
import datetime
import logging
import os
import time

import torch
import torchvision
from tensorboardX import SummaryWriter

log = logging.getLogger('train')
GRID_ROWS = 4


def archive_old_logs(log_dir):
    """Rename an existing non-empty `log_dir` to `<log_dir>_archived_<time stamp>`; returns the new name."""
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


class TrainLogger:
    """Writes only where `enabled` (the main process); every method is a no-op elsewhere."""

    def __init__(self, log_dir, resume_iteration=None, enabled=True):
        self.enabled = enabled
        if not enabled:
            return
        if resume_iteration is None:
            archived = archive_old_logs(log_dir)
            if archived:
                log.info('earlier logs of this name archived to %s', archived)
        os.makedirs(log_dir, exist_ok=True)
        self.writer = SummaryWriter(log_dir, purge_step=resume_iteration)
        self.text_log = open(os.path.join(log_dir, 'loss_log.txt'), 'a', encoding='utf-8')

    def scalars(self, iteration, values, group):
        """`values` as TensorBoard scalars `<group>/<name>`."""
        if self.enabled:
            for name, value in values.items():
                self.writer.add_scalar(f'{group}/{name}', value, iteration)

    def images(self, iteration, visuals):
        if self.enabled:
            self.writer.add_image(f"images/{'-'.join(visuals)}", image_grid(visuals), iteration)

    def message(self, text):
        """A console line, also appended to `loss_log.txt`."""
        if self.enabled:
            log.info(text)
            self.text_log.write(text + '\n')
            self.text_log.flush()

    def progress(self, epoch, total_epochs, iteration, losses, lrs, seconds_per_iter, eta_seconds):
        values = ' '.join(f'{name} {value:.4g}' for name, value in {**losses, **lrs}.items())
        self.message(f'epoch {epoch}/{total_epochs} iter {iteration} | {values} | '
                     f'{seconds_per_iter:.3f} s/it | ETA {format_duration(eta_seconds)}')

    def close(self):
        if self.enabled:
            self.writer.close()
            self.text_log.close()
