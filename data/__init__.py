"""Datasets by `--dataset_name`, CycleGAN style: `data/<name>_dataset.py` holds `DATASET_CLASS`.

The dataset modules are imported with this package, not by name when a dataset is asked for: after a torch.hub load
(hubconf.py), the name `data` may be the caller's own package."""
import argparse
import itertools
import random
import signal

import numpy as np
import torch.utils.data

from data import celeba_dataset, ffhq_dataset, single_dataset
from utils.cli import UserError

_DATASET_CLASSES = {module.__name__.removeprefix('data.').removesuffix('_dataset'): module.DATASET_CLASS
                    for module in (single_dataset, celeba_dataset, ffhq_dataset)}
DATASET_NAMES = tuple(_DATASET_CLASSES)


def get_dataset_class(name: str) -> type[torch.utils.data.Dataset]:
    if name not in DATASET_NAMES:
        raise ValueError(f"--dataset_name must be one of {DATASET_NAMES}, got {name!r}")
    return _DATASET_CLASSES[name]


def create_dataset(opt: argparse.Namespace) -> torch.utils.data.Dataset:
    return get_dataset_class(opt.dataset_name)(opt)


def create_test_dataloader(dataset, opt):
    """In-order batches, decoded by --num_threads processes ahead of the network (pinned for a GPU).

    Unreadable images come out in `errors` instead of stopping the run.
    """
    return torch.utils.data.DataLoader(dataset, batch_size=opt.batch_size, shuffle=False, num_workers=opt.num_threads,
                                       collate_fn=dataset.collate, pin_memory=opt.device.type == 'cuda')


class ResumableSampler(torch.utils.data.DistributedSampler):
    """This process's share of a seeded per-epoch shuffle (or of the sorted order), able to start mid-epoch.

    The order depends only on (--seed, epoch), as DistributedSampler's, so a resumed run skips the
    batches already trained on and sees the same ones after them.
    """

    def __init__(self, dataset, num_replicas, rank, seed, shuffle=True):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True)
        self.start = 0

    def set_position(self, epoch, start):
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self):
        return super().__len__() - self.start


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def leave_stop_signals_to_main(worker_id=None):
    """Loader processes ignore Ctrl-C and SIGTERM: sent to the whole process group (a terminal, Slurm's
    scancel, systemd), they must not kill the workers under the main process, whose job the stop is
    (finish the iteration, save, exit). They start with both blocked (`StopSafeLoader`), so a stop that
    arrives before this runs waits, then is ignored. Workers still exit when the main process shuts them
    down or dies (PyTorch's watchdog checks the parent every few seconds)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


class StopSafeLoader(torch.utils.data.DataLoader):
    """A DataLoader whose worker processes start with Ctrl-C and SIGTERM blocked.

    Without the block, a SIGTERM to the process group between a worker's fork and its
    `leave_stop_signals_to_main` killed it, and the main process died of "DataLoader worker ...
    is killed by signal" instead of saving. Signals to the main process wait meanwhile, not lost.
    """

    def __iter__(self):
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            return super().__iter__()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _init_train_worker(worker_id):
    """Seed the global RNGs of a loader process from its torch seed; leave the stop signals to the main process."""
    leave_stop_signals_to_main()
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


class TrainLoader:
    """Batches of one process (`--batch_size` split over the torchrun processes, times `--accum_steps`: the
    micro-batches of one optimizer step come as one batch), epoch by epoch.

    `--serial_batches` takes the images in sorted order; `--debug` makes every epoch one batch long.
    """

    def __init__(self, dataset, opt, rank=0, world_size=1):
        if opt.batch_size % world_size:
            raise UserError(f"--batch_size {opt.batch_size} must be a multiple of the {world_size} processes")
        self.dataset = dataset
        self.seed = opt.seed
        self.sampler = ResumableSampler(dataset, world_size, rank, opt.seed, shuffle=not opt.serial_batches)
        self.micro_batch_size = opt.batch_size // world_size
        self.batch_size = self.micro_batch_size * opt.accum_steps
        self.batches_per_epoch = self.sampler.num_samples // self.batch_size
        if opt.debug:
            self.batches_per_epoch = min(self.batches_per_epoch, 1)
        if self.batches_per_epoch == 0:
            accumulated = f' x --accum_steps {opt.accum_steps}' if opt.accum_steps > 1 else ''
            raise UserError(f"{dataset.root}: {len(dataset)} images are fewer than one batch of "
                            f"--batch_size {opt.batch_size}{accumulated}; lower --batch_size or add images")
        self.generator = torch.Generator()
        self.loader = StopSafeLoader(
            dataset, batch_size=self.batch_size, sampler=self.sampler, num_workers=opt.num_threads,
            collate_fn=dataset.collate, drop_last=True, pin_memory=opt.device.type == 'cuda',
            worker_init_fn=_init_train_worker, generator=self.generator)

    def epoch(self, epoch, start_batch=0):
        """Iterator over the batches of `epoch` from `start_batch` on."""
        self.dataset.set_epoch(epoch)
        self.generator.manual_seed(self.seed + epoch)
        self.sampler.set_position(epoch, start_batch * self.batch_size)
        return itertools.islice(self.loader, self.batches_per_epoch - start_batch)


def create_train_dataloader(dataset, opt, rank=0, world_size=1):
    return TrainLoader(dataset, opt, rank, world_size)
