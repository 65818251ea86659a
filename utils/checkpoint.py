"""Training checkpoints written atomically, and the RNG states they carry.

Every file goes to a temporary name beside its target, is flushed to disk, then renamed over it:
a crash or Ctrl-C while saving leaves the previous file whole. The training-state file holds
everything a resume needs (networks included), so a resume never mixes files of two saves.
Everything is stored as tensors and plain Python values, loadable with `weights_only=True`.
"""
import os
import random

import numpy as np
import torch

from .atomic import atomic_write
from .cli import UserError
from .state_dict import load_tensors

STATE_NAME = 'train_state'


def state_path(save_dir, tag):
    return os.path.join(save_dir, f'{tag}_{STATE_NAME}.pth')


def net_path(save_dir, tag, net_name):
    """`<save_dir>/<tag>_net_<net_name>.pth`, tag being `latest`, `iter_N` or `epoch_N`."""
    return os.path.join(save_dir, f'{tag}_net_{net_name}.pth')


def load_tag(epoch, load_iter):
    """The tag of `--epoch` (latest or a number) or, when positive, of `--load_iter`."""
    if load_iter > 0:
        return f'iter_{load_iter}'
    epoch = str(epoch)
    return f'epoch_{epoch}' if epoch.isdigit() else epoch


def atomic_save(obj, path):
    """`torch.save(obj, path)` through a temporary file: a crash while saving keeps the previous file."""
    with atomic_write(path) as handle:
        torch.save(obj, handle)


def save_checkpoint(save_dir, tag, networks, train_state=None):
    """`<tag>_net_<name>.pth` for each {name: state dict}, then `<tag>_train_state.pth` if given."""
    os.makedirs(save_dir, exist_ok=True)
    for name, state_dict in networks.items():
        atomic_save(state_dict, net_path(save_dir, tag, name))
    if train_state is not None:
        atomic_save(train_state, state_path(save_dir, tag))


def describe(obj):
    """`list of 2`, `dict`, ...: what a file held, for error messages."""
    return f'{type(obj).__name__} of {len(obj)}' if isinstance(obj, (list, tuple, dict)) else type(obj).__name__


def load_train_state(path):
    """The dict saved by `save_checkpoint`, read without running code; UserError in one line if unusable."""
    if not os.path.isfile(path):
        raise UserError(f"--continue_train: no training state to resume from ({path} is missing); "
                        "check --checkpoints_dir and --name, or start a new run without --continue_train")
    state = load_tensors(path, what='training state')
    if not isinstance(state, dict) or 'iteration' not in state:
        raise UserError(f"{path}: not a training state saved by train.py")
    return state


def load_published_position(path):
    """(epoch, batch in epoch) of the published code's `<tag>.info` ({'resume_epoch': .., 'resume_iter': ..})."""
    info = load_tensors(path, what="position file of the published code")
    if not (isinstance(info, dict) and all(isinstance(info.get(key), int) and info[key] >= 0
                                           for key in ('resume_epoch', 'resume_iter'))):
        raise UserError(f"{path}: expected the published code's {{'resume_epoch': E, 'resume_iter': I}}, "
                        f"found {describe(info)}")
    return info['resume_epoch'], info['resume_iter']


def rng_states():
    """The states of Python's, NumPy's and torch's (CPU and CUDA) global generators, as plain values."""
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {'python': random.getstate(),
            'numpy': {'keys': torch.from_numpy(keys.astype(np.int64)), 'pos': int(position),
                      'has_gauss': int(has_gauss), 'cached_gaussian': float(cached_gaussian)},
            'torch': torch.get_rng_state(),
            'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_states(states):
    version, internal, gauss_next = states['python']
    random.setstate((version, tuple(internal), gauss_next))
    numpy_state = states['numpy']
    np.random.set_state(('MT19937', numpy_state['keys'].numpy().astype(np.uint32), numpy_state['pos'],
                         numpy_state['has_gauss'], numpy_state['cached_gaussian']))
    torch.set_rng_state(states['torch'])
    if states['cuda'] and torch.cuda.is_available() and len(states['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states['cuda'])
