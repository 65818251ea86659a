"""Train SPARNet (CelebA, L1) or SPARNetHD (FFHQ, GAN + EMA generator) on the CPU, one GPU or many.

`torchrun --nproc_per_node N train.py ...` trains with DistributedDataParallel (one process per
GPU, or gloo processes on the CPU). `--continue_train` resumes from `<checkpoints_dir>/<name>/latest`
exactly where the run stopped (or a run of the published code from its `latest_*` files); Ctrl-C
or SIGTERM save `latest` after the current iteration.
"""
import contextlib
import logging
import math
import os
import signal
import time

import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from data import create_dataset, create_train_dataloader, get_dataset_class, leave_stop_signals_to_main
from models import create_model
from options.train_options import TrainOptions
from utils import distributed
from utils.checkpoint import (load_published_position, load_train_state, rng_states, save_checkpoint, set_rng_states,
                              state_path)
from utils.cli import UserError, run
from utils.train_logger import TrainLogger
from utils.validation import Validator

log = logging.getLogger('train')
TRAIN_DATASETS = ('celeba', 'ffhq')
STOP_EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
POSITIVE_FLAGS = ('total_epochs', 'print_freq', 'visual_freq', 'save_latest_freq', 'val_freq', 'lr_decay_iters')
NON_NEGATIVE_FLAGS = ('save_iter_freq', 'save_epoch_freq', 'resume_epoch', 'resume_iter')
UNCOMPARED_FLAGS = ('continue_train', 'gpus', 'gpu_ids', 'num_threads', 'total_epochs', 'published_epochs', 'rank',
                    'world_size', 'resume_epoch', 'resume_iter', 'verbose')


def check_options(opt):
    if opt.dataset_name not in TRAIN_DATASETS:
        raise UserError(f"--dataset_name {opt.dataset_name} holds no HR targets to train on; use celeba "
                        "(SPARNet, x8 bicubic pairs) or ffhq (SPARNetHD, degraded pairs)")
    for flag in POSITIVE_FLAGS:
        if getattr(opt, flag) < 1:
            raise UserError(f"--{flag} must be at least 1, got {getattr(opt, flag)}")
    for flag in NON_NEGATIVE_FLAGS:
        if getattr(opt, flag) < 0:
            raise UserError(f"--{flag} must be 0 or more, got {getattr(opt, flag)}")


def plain_options(opt):
    """The options as plain values (what a training state can store and a resume compares)."""
    plain = {}
    for name, value in vars(opt).items():
        if isinstance(value, (list, tuple)):
            value = list(value)
        if value is None or isinstance(value, (str, int, float, bool, list)):
            plain[name] = value
    return plain


class StopSignals:
    """Ctrl-C and SIGTERM ask to stop after the current iteration; a second Ctrl-C aborts at once."""

    def __init__(self, announce=True):
        self.announce = announce

    def __enter__(self):
        self.received = None
        self.previous = {signum: signal.signal(signum, self._handle) for signum in STOP_EXIT_CODES}
        return self

    def _handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum
        if self.announce:
            log.warning('%s: stopping after this iteration, once `latest` is saved (Ctrl-C again aborts)',
                        signal.Signals(signum).name)

    def __exit__(self, *exc_info):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def algorithms(deterministic):
    """Deterministic algorithms (bit-exact on the CPU; on GPUs, warnings for ops without one) or fast ones."""
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = deterministic, not deterministic
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[2:]


class IterationTimer:
    """Mean seconds per iteration between two laps (data loading included)."""

    def __init__(self, iteration):
        self.start, self.iteration = time.perf_counter(), iteration

    def lap(self, iteration):
        now = time.perf_counter()
        seconds = (now - self.start) / max(1, iteration - self.iteration)
        self.start, self.iteration = now, iteration
        return seconds


class Trainer:
    """The training loop: data, model, logging, checkpoints and resume of one process."""

    def __init__(self, opt):
        check_options(opt)
        if opt.deterministic:
            os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
        distributed.setup(opt)
        self.opt = opt
        self.is_main = opt.rank == 0
        self.dataset = create_dataset(opt)
        self.dataset.check_readable()
        self.loader = create_train_dataloader(self.dataset, opt, opt.rank, opt.world_size)
        self.validator = self._validator() if opt.val_dataroot else None
        self.model = create_model(opt).setup_training(self.loader.batches_per_epoch)
        if opt.verbose and self.is_main:
            self.model.print_networks(self.model.saved_networks())
        self.epoch, self.batch_in_epoch, self.iteration, self.saved_iteration = 0, 0, 0, None
        self.reported_files = set()
        if opt.continue_train:
            self._resume()
        else:
            if os.path.exists(os.path.join(self.model.save_dir, 'latest_net_G.pth')) and self.is_main:
                log.warning('%s holds checkpoints of an earlier run; this new run will overwrite them '
                            '(--continue_train resumes that run instead)', self.model.save_dir)
            if opt.resume_epoch or opt.resume_iter:
                self._start_at(opt.resume_epoch, opt.resume_iter, 'new weights, --resume_epoch/--resume_iter')
        self.logger = TrainLogger(os.path.join(opt.log_dir, opt.name),
                                  self.iteration if opt.continue_train else None, self.is_main)

    def _validator(self):
        dataset = get_dataset_class(self.opt.dataset_name)(self.opt, self.opt.val_dataroot, augment=False)
        dataset.check_readable()
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.loader.batch_size, shuffle=False,
                                             num_workers=self.opt.num_threads, collate_fn=dataset.collate,
                                             worker_init_fn=leave_stop_signals_to_main)
        return Validator(loader, self.opt.device, dataset.small_lr, self.opt.y_quantization)

    def _start_at(self, epoch, batch_in_epoch, source):
        """Start `batch_in_epoch` batches into the 0-based `epoch`, learning rates at that iteration."""
        self.iteration = epoch * self.loader.batches_per_epoch + batch_in_epoch
        self.epoch, self.batch_in_epoch = divmod(self.iteration, self.loader.batches_per_epoch)
        self.model.start_schedulers_at(self.iteration)
        if self.is_main:
            log.info('starting at epoch %d, iteration %d (%s)', self.epoch + 1, self.iteration, source)

    def _resume_published(self):
        """Resume a run of the published code from its `latest_*` files, saying what they could not restore."""
        save_dir = self.model.save_dir
        self.model.load_published_checkpoint(save_dir, 'latest')
        info_path = os.path.join(save_dir, 'latest.info')
        if os.path.isfile(info_path):
            self._start_at(*load_published_position(info_path), f'position of {info_path}')
        else:
            self._start_at(self.opt.resume_epoch, self.opt.resume_iter,
                           'no latest.info: position of --resume_epoch/--resume_iter')
        if self.is_main:
            log.warning('resumed a run of the published code from %s (latest_net_*.pth, latest_opts.pth); not '
                        'restored, as it did not save them: random-number states, which images of the current '
                        'epoch were already seen (its order was not seeded), learning-rate schedulers '
                        '(recomputed for iteration %d)', save_dir, self.iteration)

    def _resume(self):
        path = state_path(self.model.save_dir, 'latest')
        if not os.path.isfile(path) and os.path.isfile(os.path.join(self.model.save_dir, 'latest_opts.pth')):
            return self._resume_published()
        state = load_train_state(path)
        self.model.load_training_state(state['model'], path)
        self.epoch, self.batch_in_epoch = state['epoch'], state['batch_in_epoch']
        self.iteration = self.saved_iteration = state['iteration']
        if self.batch_in_epoch >= self.loader.batches_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        set_rng_states(state['rng'])
        current = plain_options(self.opt)
        changed = [f'--{name} {value!r} -> {current.get(name)!r}' for name, value in state['options'].items()
                   if name not in UNCOMPARED_FLAGS and current.get(name) != value]
        if changed and self.is_main:
            log.warning('resuming with flags that differ from the interrupted run (optimizer and scheduler '
                        'states are the saved ones): %s', ', '.join(changed))
        if (self.opt.resume_epoch or self.opt.resume_iter) and self.is_main:
            log.warning('--resume_epoch/--resume_iter ignored: --continue_train resumes at the saved position')
        if self.is_main:
            log.info('resuming %s at epoch %d, iteration %d', path, self.epoch + 1, self.iteration)

    def save(self, tag, with_state=False):
        """Networks as `<tag>_net_*.pth` (+ the full training state for `latest`), by the main process."""
        if with_state:
            self.saved_iteration = self.iteration
        if not self.is_main:
            return
        networks = {name: net.state_dict() for name, net in self.model.saved_networks().items()}
        train_state = None
        if with_state:
            train_state = {'model': self.model.training_state(), 'epoch': self.epoch,
                           'batch_in_epoch': self.batch_in_epoch, 'iteration': self.iteration,
                           'rng': rng_states(), 'options': plain_options(self.opt)}
        save_checkpoint(self.model.save_dir, tag, networks, train_state)

    def _report_unreadable(self, errors):
        for rel_path, message in errors:
            if rel_path not in self.reported_files:
                self.reported_files.add(rel_path)
                log.warning('%s (skipped, the next image takes its place)', message)

    def validate(self):
        """PSNR / SSIM of each validation network and of the bicubic baseline on --val_dataroot, and a face grid."""
        self.logger.validation(self.iteration, *self.validator.run(self.model.validation_networks()))

    def _after_iteration(self, losses):
        """Console / TensorBoard logs, image grids, validation and saves due at this iteration."""
        opt, iteration = self.opt, self.iteration
        if iteration % opt.print_freq == 0:
            seconds_per_iter = self.timer.lap(iteration)
            lrs = self.model.learning_rates()
            remaining = opt.total_epochs * self.loader.batches_per_epoch - iteration
            self.logger.scalars(iteration, losses, 'loss')
            self.logger.scalars(iteration, lrs, 'lr')
            self.logger.scalars(iteration, {'seconds_per_iteration': seconds_per_iter}, 'time')
            self.logger.progress(self.epoch + 1, opt.total_epochs, iteration, losses, lrs, seconds_per_iter,
                                 seconds_per_iter * remaining)
        if iteration % opt.visual_freq == 0 and self.is_main:
            self.logger.images(iteration, self.model.get_current_visuals())
        if self.validator is not None and iteration % opt.val_freq == 0 and self.is_main:
            self.validate()
        if opt.save_iter_freq and iteration % opt.save_iter_freq == 0:
            self.save(f'iter_{iteration}')
        if iteration % opt.save_latest_freq == 0:
            self.save('latest', with_state=True)

    def _report_non_finite(self, losses):
        if self.is_main:
            kept = (f'`latest` keeps iteration {self.saved_iteration}' if self.saved_iteration is not None
                    else 'no checkpoint was saved yet')
            log.error('non-finite loss at iteration %d (%s): stopped without saving; %s. Lower the learning rate '
                      'or check the data, then resume with --continue_train', self.iteration,
                      ', '.join(f'{k} {v:.4g}' for k, v in losses.items()), kept)

    def _train_epoch(self, stop):
        """Train the rest of `self.epoch`; returns 'done', 'stopped' or 'non-finite'."""
        batches = self.loader.epoch(self.epoch, self.batch_in_epoch)
        progress = tqdm(batches, total=self.loader.batches_per_epoch, initial=self.batch_in_epoch, unit='it',
                        desc=f'epoch {self.epoch + 1}/{self.opt.total_epochs}', disable=not self.is_main)
        for batch in progress:
            self._report_unreadable(batch['errors'])
            self.model.set_input(batch)
            self.model.optimize_parameters()
            self.model.update_learning_rate()
            self.iteration += 1
            self.batch_in_epoch += 1
            losses = self.model.get_current_losses()
            stop_requested, non_finite = distributed.any_process(
                [stop.received is not None, not all(map(math.isfinite, losses.values()))], self.opt.device)
            if non_finite:
                self._report_non_finite(losses)
                return 'non-finite'
            progress.set_postfix(losses, refresh=False)
            self._after_iteration(losses)
            if stop_requested:
                if self.saved_iteration != self.iteration:
                    self.save('latest', with_state=True)
                distributed.barrier()  # torchrun kills the others as soon as one process exits non-zero
                if self.is_main:
                    log.warning('stopped at iteration %d; `latest` saved in %s: resume with --continue_train',
                                self.iteration, self.model.save_dir)
                return 'stopped'
        return 'done'

    def run(self):
        """Train to --total_epochs; returns the exit code (0 done, 1 non-finite loss, 130/143 stopped)."""
        opt = self.opt
        try:
            if self.epoch >= opt.total_epochs:
                log.info('%s has already trained %d epochs; raise --total_epochs to train further',
                         opt.name, opt.total_epochs)
                return 0
            if self.is_main:
                log.info('training %s on %d images of %s: %d iterations per epoch, %d processes, %s',
                         opt.model, len(self.dataset), self.dataset.root, self.loader.batches_per_epoch,
                         opt.world_size, opt.device)
            with StopSignals(self.is_main) as stop, logging_redirect_tqdm(), algorithms(opt.deterministic):
                self.timer = IterationTimer(self.iteration)
                for epoch in range(self.epoch, opt.total_epochs):
                    if epoch > self.epoch:
                        self.epoch, self.batch_in_epoch = epoch, 0
                    outcome = self._train_epoch(stop)
                    if outcome == 'non-finite':
                        return 1
                    if outcome == 'stopped':
                        return STOP_EXIT_CODES.get(stop.received, 130)
                    if epoch + 1 == opt.total_epochs or (opt.save_epoch_freq and
                                                         (epoch + 1) % opt.save_epoch_freq == 0):
                        self.save(f'epoch_{epoch + 1}')
                if self.saved_iteration != self.iteration:
                    self.save('latest', with_state=True)
            if self.is_main:
                log.info('finished %d epochs (%d iterations); checkpoints in %s', opt.total_epochs,
                         self.iteration, self.model.save_dir)
            return 0
        finally:
            self.logger.close()
            distributed.cleanup()


def main(args=None):
    return Trainer(TrainOptions().parse(args)).run()


if __name__ == '__main__':
    run(main)
