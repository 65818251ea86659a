"""Training checkpoints written as whole sets, and the RNG states they carry.

All files of a checkpoint (`<tag>_net_*.pth`, then `<tag>_train_state.pth`) are first written to
temporary names beside their targets and flushed to disk, then renamed over them, the training
state last: a full disk, a crash or Ctrl-C while writing leaves the previous set whole. The
training-state file holds everything a resume needs (networks included), so a resume never mixes
files of two saves. Everything is stored as tensors and plain Python values, loadable with
`weights_only=True`.
"""
import os
import random
import re
from typing import Any, BinaryIO

import numpy as np
import torch

from utils.atomic import StagedFiles
from utils.cli import UserError
from utils.output_plan import free_space
from weights.state_dict import load_tensors

STATE_NAME = 'train_state'
FULL_DISK_BYTES = 64 << 20  # less free space than this after a failed write: the disk was full


def state_path(save_dir: str, tag: str) -> str:
    return os.path.join(save_dir, f'{tag}_{STATE_NAME}.pth')


def net_path(save_dir: str, tag: str, net_name: str) -> str:
    """`<save_dir>/<tag>_net_<net_name>.pth`, tag being `latest`, `iter_N` or `epoch_N`."""
    return os.path.join(save_dir, f'{tag}_net_{net_name}.pth')


def snapshots(save_dir: str, net_name: str, batches_per_epoch: int) -> list[tuple[int, str, int, str]]:
    """[(iteration, flag, N, path)] of the `epoch_N` / `iter_N` snapshots of net `net_name`, newest first; `flag`
    (--resume_epoch or --resume_iter) with N starts a new run at that iteration."""
    found = []
    for name in os.listdir(save_dir) if os.path.isdir(save_dir) else ():
        match = re.fullmatch(rf'(epoch|iter)_(\d+)_net_{net_name}\.pth', name)
        if match:
            count = int(match[2])
            iteration = count * batches_per_epoch if match[1] == 'epoch' else count
            found.append((iteration, f'--resume_{match[1]}', count, os.path.join(save_dir, name)))
    return sorted(found, reverse=True)


def load_tag(epoch: str | int, load_iter: int) -> str:
    """The tag of `--epoch` (latest or a number) or, when positive, of `--load_iter`."""
    if load_iter > 0:
        return f'iter_{load_iter}'
    epoch = str(epoch)
    return f'epoch_{epoch}' if epoch.isdigit() else epoch


class _RecordingWriter:
    """A file for torch.save that keeps the OSError of a failed write: torch's zip writer swallows it (a full disk
    surfaces as `RuntimeError: ... unexpected pos`), and the message should name it."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.handle.flush()


def write_failure(err: BaseException, recorded: OSError | None, path: str) -> str:
    """Why writing `path` failed, in a few words: the file's OSError (raised, or `recorded` under torch's
    RuntimeError), else the first line of the writer's message and, when the disk is nearly full, its free space."""
    err = recorded or err
    if isinstance(err, OSError):
        return err.strerror or str(err)
    reason = (str(err).strip().splitlines() or [err.__class__.__name__])[0][:200]
    try:
        free = free_space(path)
    except OSError:
        return f'the writer failed: {reason}'
    if free < FULL_DISK_BYTES:
        return f'no space left on the device: {free / 1e6:.1f} MB free'
    return f'the writer failed: {reason}'


class SaveError(Exception):
    """A checkpoint could not be written (full disk, no permission): its files keep their previous content."""


class StagedCheckpoint:
    """The files of checkpoint `tag`, written under temporary names: nothing changes on disk until `commit()`.

    SaveError, with the temporary files removed, when a file cannot be written or renamed.
    """

    def __init__(self, save_dir: str, tag: str, networks: dict[str, dict[str, torch.Tensor]],
                 train_state: dict[str, Any] | None = None) -> None:
        """`networks`: {name: state dict} saved as `<tag>_net_<name>.pth`; `train_state` as `<tag>_train_state.pth`."""
        self.files = StagedFiles()
        contents = [(net_path(save_dir, tag, name), state_dict) for name, state_dict in networks.items()]
        if train_state is not None:
            contents.append((state_path(save_dir, tag), train_state))
        for path, obj in contents:
            writer = None
            try:
                with self.files.open(path) as handle:
                    writer = _RecordingWriter(handle)
                    torch.save(obj, writer)
            except (OSError, RuntimeError) as err:  # a full disk: the file's OSError, or torch's zip writer's
                self.discard()
                recorded = writer.error if writer is not None else None
                raise SaveError(f"{path}: could not write the checkpoint ({write_failure(err, recorded, path)}); "
                                f"the files of `{tag}` are unchanged") from err
            except BaseException:
                self.discard()
                raise

    def commit(self) -> None:
        """Put every file in place, the training state last."""
        try:
            self.files.commit()
        except OSError as err:
            path = self.files.staged[0][1]
            self.discard()
            raise SaveError(f"{path}: could not put the checkpoint in place ({err.strerror or err})") from err

    def discard(self) -> None:
        """Remove the temporary files: the checkpoint on disk stays the previous one."""
        self.files.discard()


def describe(obj: object) -> str:
    """`list of 2`, `dict`, ...: what a file held, for error messages."""
    return f'{type(obj).__name__} of {len(obj)}' if isinstance(obj, (list, tuple, dict)) else type(obj).__name__


def load_train_state(path: str) -> dict[str, Any]:
    """The training state saved by `StagedCheckpoint`, read without running code; UserError in one line if unusable."""
    if not os.path.isfile(path):
        raise UserError(f"--continue_train: no training state to resume from ({path} is missing); "
                        "check --checkpoints_dir and --name, or start a new run without --continue_train")
    state = load_tensors(path, what='training state')
    if not isinstance(state, dict) or 'iteration' not in state:
        raise UserError(f"{path}: not a training state saved by train.py")
    return state


def load_published_position(path: str) -> tuple[int, int]:
    """(epoch, batch in epoch) of the published code's `<tag>.info` ({'resume_epoch': .., 'resume_iter': ..})."""
    info = load_tensors(path, what="position file of the published code")
    if not (isinstance(info, dict) and all(isinstance(info.get(key), int) and info[key] >= 0
                                           for key in ('resume_epoch', 'resume_iter'))):
        raise UserError(f"{path}: expected the published code's {{'resume_epoch': E, 'resume_iter': I}}, "
                        f"found {describe(info)}")
    return info['resume_epoch'], info['resume_iter']


def rng_states() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's (CPU and CUDA) global generators, as plain values."""
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {'python': random.getstate(),
            'numpy': {'keys': torch.from_numpy(keys.astype(np.int64)), 'pos': int(position),
                      'has_gauss': int(has_gauss), 'cached_gaussian': float(cached_gaussian)},
            'torch': torch.get_rng_state(),
            'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss_next = states['python']
    random.setstate((version, tuple(internal), gauss_next))
    numpy_state = states['numpy']
    np.random.set_state(('MT19937', numpy_state['keys'].numpy().astype(np.uint32), numpy_state['pos'],
                         numpy_state['has_gauss'], numpy_state['cached_gaussian']))
    torch.set_rng_state(states['torch'])
    if states['cuda'] and torch.cuda.is_available() and len(states['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states['cuda'])
