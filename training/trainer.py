"""The training loop of train.py: data, model, logs, validation, checkpoints and resume of one process.

`torchrun --nproc_per_node N train.py ...` trains with DistributedDataParallel (one process per
GPU, or gloo processes on the CPU). `--continue_train` resumes from `<checkpoints_dir>/<name>/latest`
exactly where the run stopped (or a run of the published code from its `latest_*` files); Ctrl-C
or SIGTERM save `latest` after the current iteration.

A checkpoint due at iteration N is written under temporary names at once and put in place at
iteration N + 1, once the weights it holds have given a finite loss (at a stop or at the end of the
run, at once); non-finite weights or optimizer states are never saved. So `latest` always holds a
state that trained on, which `--continue_train --reset_optimizer` resumes with new learning rates.
"""
import argparse
import logging
import math
import os
from typing import Any

from data import StopSafeLoader, create_dataset, create_train_dataloader, get_dataset_class, leave_stop_signals_to_main
from models import create_model
from models.precision import check_training_precision
from training.logger import TrainLogger
from training.run_control import STOP_EXIT_CODES, IterationTimer, StopSignals, algorithms
from training.validation import Validator
from utils import distributed
from utils.cli import UserError
from utils.progress import logging_redirect
from utils.progress import progress as progress_bar
from weights.checkpoint import (
    SaveError,
    StagedCheckpoint,
    load_published_position,
    load_train_state,
    rng_states,
    set_rng_states,
    snapshots,
    state_path,
)
from weights.generator import check_generator_file
from weights.state_dict import first_non_finite

log = logging.getLogger('train')
TRAIN_DATASETS = ('celeba', 'ffhq')
POSITIVE_FLAGS = ('total_epochs', 'print_freq', 'visual_freq', 'save_latest_freq', 'val_freq', 'lr_decay_iters',
                  'accum_steps')
NON_NEGATIVE_FLAGS = ('save_iter_freq', 'save_epoch_freq', 'resume_epoch', 'resume_iter')
UNCOMPARED_FLAGS = ('continue_train', 'gpus', 'gpu_ids', 'num_threads', 'total_epochs', 'published_epochs', 'rank',
                    'world_size', 'resume_epoch', 'resume_iter', 'verbose', 'reset_optimizer', 'overwrite')
# fp16 steps in a row whose loss is not finite that the loss scaler may skip before the run counts as diverged
MAX_SKIPPED_STEPS = 10


def check_options(opt: argparse.Namespace) -> None:
    if opt.dataset_name not in TRAIN_DATASETS:
        raise UserError(f"--dataset_name {opt.dataset_name} holds no HR targets to train on; use celeba "
                        "(SPARNet, x8 bicubic pairs) or ffhq (SPARNetHD, degraded pairs)")
    for flag in POSITIVE_FLAGS:
        if getattr(opt, flag) < 1:
            raise UserError(f"--{flag} must be at least 1, got {getattr(opt, flag)}")
    for flag in NON_NEGATIVE_FLAGS:
        if getattr(opt, flag) < 0:
            raise UserError(f"--{flag} must be 0 or more, got {getattr(opt, flag)}")
    if opt.overwrite and opt.continue_train:
        raise UserError("--overwrite starts a new run over an earlier one, --continue_train resumes it: choose one")
    if opt.reset_optimizer and not opt.continue_train:
        raise UserError("--reset_optimizer applies to a resumed run: add --continue_train (a new run's optimizers "
                        "start afresh anyway)")


def plain_options(opt: argparse.Namespace) -> dict[str, Any]:
    """The options as plain values (what a training state can store and a resume compares)."""
    plain = {}
    for name, value in vars(opt).items():
        if isinstance(value, (list, tuple)):
            value = list(value)
        if value is None or isinstance(value, (str, int, float, bool, list)):
            plain[name] = value
    return plain


def check_new_run(opt: argparse.Namespace) -> list[str]:
    """The files of a resumable run in `<checkpoints_dir>/<name>`; UserError if there are some and not --overwrite."""
    save_dir = os.path.join(opt.checkpoints_dir, opt.name)
    earlier = [name for name in ('latest_train_state.pth', 'latest_net_G.pth')
               if os.path.isfile(os.path.join(save_dir, name))]
    if earlier and not opt.overwrite:
        raise UserError(f"{save_dir} holds the checkpoints of an earlier run of --name {opt.name} "
                        f"({', '.join(earlier)}): resume it with --continue_train, or start a new run over it "
                        "with --overwrite (or choose another --name)")
    return earlier


class Diverged(Exception):
    """A non-finite loss, weight or optimizer state: the run stops, and that state is never saved."""


class Trainer:
    """The training loop: data, model, logging, checkpoints and resume of one process."""

    def __init__(self, opt: argparse.Namespace) -> None:
        check_options(opt)
        if opt.deterministic:
            os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
        distributed.setup(opt)
        check_training_precision(opt.precision, opt.device)
        self.opt = opt
        self.is_main = opt.rank == 0
        self.dataset = create_dataset(opt)
        self.dataset.check_readable()
        self.loader = create_train_dataloader(self.dataset, opt, opt.rank, opt.world_size)
        self.validator = self._validator() if opt.val_dataroot else None
        self.model = create_model(opt).setup_training(self.loader.batches_per_epoch)
        if opt.verbose and self.is_main:
            self.model.print_networks(self.model.saved_networks())
        self.epoch, self.batch_in_epoch, self.iteration = 0, 0, 0
        self.saved_iteration = self.latest_iteration = None  # of `latest` on disk / of the newest staged or on disk
        self.pending = []  # [(StagedCheckpoint or None off the main process, its iteration if `latest`)]
        self.reported_files = set()
        self.skipped_in_a_row = 0  # fp16 steps skipped by the loss scaler on a non-finite loss
        if opt.continue_train:
            self._resume()
        else:
            self._check_new_run()
            if opt.resume_epoch or opt.resume_iter:
                self._start_at(opt.resume_epoch, opt.resume_iter, 'new weights, --resume_epoch/--resume_iter')
        self.logger = TrainLogger(os.path.join(opt.log_dir, opt.name),
                                  self.iteration if opt.continue_train else None, self.is_main)

    def _check_new_run(self):
        """UserError if --name already holds a resumable run, unless --overwrite."""
        save_dir = self.model.save_dir
        earlier = check_new_run(self.opt)
        if earlier and self.is_main:
            log.warning('--overwrite: the checkpoints of the earlier run in %s are replaced as this run saves them',
                        save_dir)

    def _validator(self):
        dataset = get_dataset_class(self.opt.dataset_name)(self.opt, self.opt.val_dataroot, augment=False)
        dataset.check_readable()
        loader = StopSafeLoader(dataset, batch_size=self.loader.micro_batch_size, shuffle=False,
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
        self.model.load_published_checkpoint(save_dir, 'latest', with_optimizers=not self.opt.reset_optimizer)
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
        try:
            state = load_train_state(path)
        except UserError as err:
            if not os.path.isfile(path):
                raise
            raise UserError(f'{err}. {self._restart_advice()}') from None
        reset = self.opt.reset_optimizer
        self.model.load_training_state(state['model'], path, with_optimizers=not reset)
        self.epoch, self.batch_in_epoch = state['epoch'], state['batch_in_epoch']
        self.iteration = self.saved_iteration = self.latest_iteration = state['iteration']
        if self.batch_in_epoch >= self.loader.batches_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        if reset:
            self.model.start_schedulers_at(self.iteration)
        set_rng_states(state['rng'])
        current = plain_options(self.opt)
        changed = [f'--{name} {value!r} -> {current.get(name)!r}' for name, value in state['options'].items()
                   if name not in UNCOMPARED_FLAGS and current.get(name) != value]
        if changed and self.is_main:
            optimizers = ('optimizer and scheduler states start afresh: --reset_optimizer' if reset else
                          'optimizer and scheduler states are the saved ones; --reset_optimizer starts them '
                          'afresh with the learning rates of the current flags')
            log.warning('resuming with flags that differ from the interrupted run (%s): %s', optimizers,
                        ', '.join(changed))
        if reset and self.is_main:
            log.info('--reset_optimizer: new optimizer and scheduler states, learning rates %s',
                     ', '.join(f'{name} {lr:g}' for name, lr in self.model.learning_rates().items()))
        if (self.opt.resume_epoch or self.opt.resume_iter) and self.is_main:
            log.warning('--resume_epoch/--resume_iter ignored: --continue_train resumes at the saved position')
        if self.is_main:
            log.info('resuming %s at epoch %d, iteration %d', path, self.epoch + 1, self.iteration)

    def _restart_advice(self):
        """The newest `epoch_N` / `iter_N` generator snapshot that loads, and the flags of a new run from it."""
        for iteration, flag, count, path in snapshots(self.model.save_dir, 'G', self.loader.batches_per_epoch):
            try:
                check_generator_file(path, path, self.model.spec)
            except UserError:
                continue
            return (f'The newest usable snapshot is {path} (iteration {iteration}): start a new run from it with '
                    f'--pretrain_model_path {path} {flag} {count} --overwrite (the generator only: optimizer '
                    'states and any other network start afresh)')
        return 'No epoch_N / iter_N snapshot loads: start a new run with --overwrite'

    def save(self, tag: str, with_state: bool = False) -> None:
        """Stage networks as `<tag>_net_*.pth` (+ the full training state for `latest`), written by the main
        process under temporary names until `commit_saves()`. Diverged if a weight or optimizer state is not finite.
        """
        state = self.model.training_state()
        non_finite = first_non_finite({part: state[part] for part in ('networks', 'optimizers')})
        if non_finite is not None:
            raise Diverged(f'{non_finite} holds NaN or infinite values at iteration {self.iteration}')
        staged = None
        if self.is_main:
            train_state = None
            if with_state:
                train_state = {'model': state, 'epoch': self.epoch, 'batch_in_epoch': self.batch_in_epoch,
                               'iteration': self.iteration, 'rng': rng_states(), 'options': plain_options(self.opt)}
            staged = StagedCheckpoint(self.model.save_dir, tag, state['networks'], train_state)
        self.pending.append((staged, self.iteration if with_state else None))
        if with_state:
            self.latest_iteration = self.iteration

    def commit_saves(self) -> None:
        """Put the staged checkpoints in place (SaveError if one cannot be)."""
        while self.pending:
            staged, latest_iteration = self.pending.pop(0)
            if staged is not None:
                staged.commit()
            if latest_iteration is not None:
                self.saved_iteration = latest_iteration

    def discard_saves(self) -> None:
        """Drop the staged checkpoints: the files on disk stay those of the last commit."""
        for staged, _ in self.pending:
            if staged is not None:
                staged.discard()
        self.pending = []
        self.latest_iteration = self.saved_iteration

    def save_latest(self) -> None:
        """`latest` of this iteration, and every staged checkpoint, in place now (at a stop or the end of the run)."""
        if self.latest_iteration != self.iteration:
            self.save('latest', with_state=True)
        self.commit_saves()

    def _report_unreadable(self, errors):
        for rel_path, message in errors:
            if rel_path not in self.reported_files:
                self.reported_files.add(rel_path)
                log.warning('%s (skipped, the next image takes its place)', message)

    def validate(self) -> None:
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

    def _recovery_advice(self):
        """What is on disk after a divergence, and the flags that resume from it with lower learning rates."""
        lower = ' '.join(f'--{flag} <below {lr:g}>' for flag, lr in
                         zip(self.model.lr_flags.values(), self.model.learning_rates().values()))
        kept = (f'`latest` keeps iteration {self.saved_iteration}' if self.saved_iteration is not None
                else 'no checkpoint was saved yet')
        if self.latest_iteration != self.saved_iteration:
            kept += f' (the one staged at iteration {self.latest_iteration} was dropped: its weights led here)'
        if self.saved_iteration is None:
            return f'{kept}. Start again with lower learning rates ({lower}) or check the data'
        return f'{kept}. Resume from it with lower learning rates: --continue_train --reset_optimizer {lower}; ' \
               'or check the data'

    def _save_failure_advice(self):
        """What is on disk after a failed save, and how to go on: --continue_train only when a `latest` of this run
        (or the published code's one it resumed from, which no save replaced) can resume it."""
        fix = 'free space (or fix the folder), then'
        if self.saved_iteration is not None:
            return f'`latest` keeps iteration {self.saved_iteration}: {fix} resume with --continue_train'
        if self.opt.continue_train:
            return f"the published code's `latest` files it resumed from are unchanged: {fix} resume with " \
                   '--continue_train'
        if snapshots(self.model.save_dir, 'G', self.loader.batches_per_epoch):
            return 'no `latest` was saved yet, so --continue_train has nothing to resume; free space (or fix the ' \
                   f'folder). {self._restart_advice()}'
        return f'no checkpoint was saved yet, so --continue_train has nothing to resume: {fix} run the same ' \
               'command again'

    def _skip_or_diverge(self, losses):
        """A non-finite loss: Diverged, unless fp16's loss scaler skipped the step (the weights stay those of the
        last step), at most MAX_SKIPPED_STEPS times in a row."""
        values = ', '.join(f'{name} {value:.4g}' for name, value in losses.items())
        described = f'non-finite loss at iteration {self.iteration} ({values})'
        if not self.model.skipped_step:
            raise Diverged(described)
        self.skipped_in_a_row += 1
        if self.skipped_in_a_row > MAX_SKIPPED_STEPS:
            raise Diverged(f'{described}; {self.skipped_in_a_row} fp16 steps in a row skipped by the loss scaler '
                           '(try --precision bf16 or fp32)')
        if self.is_main:
            log.warning('%s: fp16 overflowed, the loss scaler skipped the step (the weights are unchanged)',
                        described)

    def _train_epoch(self, stop):
        """Train the rest of `self.epoch`; returns 'done' or 'stopped' (Diverged on a non-finite loss)."""
        batches = self.loader.epoch(self.epoch, self.batch_in_epoch)
        progress = progress_bar(batches, total=self.loader.batches_per_epoch, initial=self.batch_in_epoch, unit='it',
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
                self._skip_or_diverge(losses)
            else:
                self.skipped_in_a_row = 0
                self.commit_saves()  # the weights they hold have just given finite losses
            progress.set_postfix(losses, refresh=False)
            self._after_iteration(losses)
            if stop_requested:
                self.save_latest()
                distributed.barrier()  # torchrun kills the others as soon as one process exits non-zero
                if self.is_main:
                    log.warning('stopped at iteration %d; `latest` saved in %s: resume with --continue_train',
                                self.iteration, self.model.save_dir)
                return 'stopped'
        return 'done'

    def run(self) -> int:
        """Train to --total_epochs; returns the exit code (0 done, 1 diverged or a save failed, 130/143 stopped)."""
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
            with StopSignals(self.is_main) as stop, logging_redirect(), algorithms(opt.deterministic):
                self.timer = IterationTimer(self.iteration)
                for epoch in range(self.epoch, opt.total_epochs):
                    if epoch > self.epoch:
                        self.epoch, self.batch_in_epoch = epoch, 0
                    outcome = self._train_epoch(stop)
                    if outcome == 'stopped':
                        return STOP_EXIT_CODES.get(stop.received, 130)
                    if epoch + 1 == opt.total_epochs or (opt.save_epoch_freq and
                                                         (epoch + 1) % opt.save_epoch_freq == 0):
                        self.save(f'epoch_{epoch + 1}')
                self.save_latest()
            if self.is_main:
                log.info('finished %d epochs (%d iterations); checkpoints in %s', opt.total_epochs,
                         self.iteration, self.model.save_dir)
            return 0
        except Diverged as err:
            if self.is_main:
                log.error('%s: stopped without saving; %s', err, self._recovery_advice())
            return 1
        except SaveError as err:
            log.error('%s. Stopped at iteration %d; %s', err, self.iteration, self._save_failure_advice())
            return 1
        finally:
            self.discard_saves()
            self.logger.close()
            distributed.cleanup()
