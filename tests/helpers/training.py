"""Tiny training runs of the real architectures on the CPU, and what their tests check of them."""
import contextlib
import errno
import io
import os

import torch
import torchvision

from archs.sparnet import SIZE_SETTINGS
from models import create_model
from options.train_options import TrainOptions
from utils import atomic

# The real architectures at their smallest workable input (64 px), fast settings for the CPU.
TINY_FLAGS = {
    'sparnet': ['--model', 'sparnet', '--dataset_name', 'celeba', '--res_depth', '1', '--load_size', '64',
                '--scale_factor', '8', '--lr', '0.0005'],
    'sparnethd': ['--model', 'sparnethd', '--dataset_name', 'ffhq', '--res_depth', '1', '--load_size', '64',
                  '--num_D', '2', '--n_layers_D', '2', '--beta1', '0.5', '--g_lr', '0.0002'],
}

# SPARNetHD at 128 channels at most (released: 512), for tests of training's mechanics rather than of the released
# shapes: the same blocks, spectral norm, GAN step and EMA, a third of the time per step at 64 px and files 6x
# smaller (23 MB). The `narrow_sparnethd` fixture puts it in place of the released settings.
NARROW_SPARNETHD = {**SIZE_SETTINGS['sparnethd'], 'max_ch': 128}


def train_flags(root, model, name='run', *extra):
    """Flags of a tiny CPU run on the faces of `root/faces`, checkpoints and logs under `root`."""
    return ['--gpus', '0', '--name', name, *TINY_FLAGS[model], '--dataroot', os.path.join(root, 'faces'),
            '--batch_size', '2', '--num_threads', '0', '--checkpoints_dir', os.path.join(root, 'checkpoints'),
            '--log_dir', os.path.join(root, 'logs'), '--print_freq', '1', '--visual_freq', '1000',
            '--save_latest_freq', '1000', '--save_iter_freq', '0', '--save_epoch_freq', '0', *extra]


def training_model(model, *extra):
    """The model of a tiny training run, set up for training (no data needed; no VGG19 unless `extra` names one)."""
    no_vgg = ['--lambda_pcp', '0'] if model == 'sparnethd' and '--vgg_weights' not in extra else []
    opt = TrainOptions().parse(['--gpus', '0', *TINY_FLAGS[model], *no_vgg, *extra])
    return create_model(opt).setup_training(iters_per_epoch=1)


def vgg_weights(path):
    """Random VGG19 weights in torchvision's format (its `features.*` keys; the classifier is not needed)."""
    torch.manual_seed(0)
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs['E'])  # vgg19().features
    torch.save({f'features.{k}': v for k, v in features.state_dict().items()}, path)
    return str(path)


class FillingFile(io.FileIO):
    """A file on a disk that fills after `room` bytes: the write that crosses it writes what fits, then every write
    raises the real OSError ENOSPC, as a file system does."""

    def __init__(self, path, mode, room):
        super().__init__(path, mode.replace('b', ''))
        self.room = room

    def write(self, data):
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = super().write(bytes(data)[:self.room])
        self.room -= written
        return written


def disk_full_for(monkeypatch, fails, room=0):
    """Temporary files of utils.atomic whose target's stem (`latest_train_state`, `latest_net_G`, ...) satisfies
    `fails(stem)` meet a full disk: opened on /dev/full (every write raises the real OSError ENOSPC), or with
    `room`, after that many bytes (torch's zip writer then raises `RuntimeError: ... unexpected pos`)."""

    def open_full(tmp_path, mode='r', **kwargs):
        stem = os.path.basename(tmp_path).split('.')[0]
        if not fails(stem):
            return open(tmp_path, mode, **kwargs)
        return FillingFile(tmp_path, mode, room) if room else open('/dev/full', mode, **kwargs)
    monkeypatch.setattr(atomic, 'open', open_full, raising=False)


def assert_same_first_step(optimizers, reference, rtol=0.05):
    """`optimizers` ({name: optimizer state dict} after one Adam step) took the step of `reference`: Adam's first
    moment after one step is (1 - beta1) * gradient, so each parameter's must be within `rtol` (relative norm)."""
    assert optimizers.keys() == reference.keys()
    for name, optimizer_state in reference.items():
        for index, values in optimizer_state['state'].items():
            moment = optimizers[name]['state'][index]['exp_avg']
            assert int(values['step']) == int(optimizers[name]['state'][index]['step']) == 1, (name, index)
            assert (moment - values['exp_avg']).norm() <= rtol * values['exp_avg'].norm(), (name, index)


class NoSyncRecorder(torch.nn.Module):
    """Stands in for DistributedDataParallel around `net`: runs it, and records, for each backward pass through it,
    whether its `no_sync` context was on (DDP then skips the gradient exchange)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.in_no_sync, self.backward_passes = net, False, []
        next(net.parameters()).register_hook(lambda grad: self.backward_passes.append(
            'local' if self.in_no_sync else 'exchanged'))

    def forward(self, *args):
        return self.net(*args)

    @contextlib.contextmanager
    def no_sync(self):
        self.in_no_sync = True
        try:
            yield
        finally:
            self.in_no_sync = False
