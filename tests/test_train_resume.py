"""An interrupted run (Ctrl-C / SIGTERM) resumed with --continue_train equals the uninterrupted run."""
import os
import signal

import pytest
import torch

from helpers.commands import run_training
from helpers.faces import face_folder
from helpers.training import train_flags
from models.sparnet_model import SPARNetModel
from models.sparnethd_model import SPARNetHDModel
from training.log_reader import read_events
from weights.checkpoint import load_train_state

pytestmark = pytest.mark.usefixtures('one_torch_thread', 'narrow_sparnethd')


def interrupt_after(model_class, calls, signum, monkeypatch):
    """Make the `calls`-th training step send `signum` to this process, as Ctrl-C or `kill` would."""
    real_step, done = model_class.optimize_parameters, []

    def step(self):
        real_step(self)
        done.append(1)
        if len(done) == calls:
            os.kill(os.getpid(), signum)
    monkeypatch.setattr(model_class, 'optimize_parameters', step)


@pytest.mark.parametrize('model, model_class, signum, exit_code, images, batch, stop_at, extra', [
    ('sparnet', SPARNetModel, signal.SIGINT, 130, 6, 2, 2, ['--lr_policy', 'linear', '--n_epochs_decay', '1']),
    ('sparnethd', SPARNetHDModel, signal.SIGTERM, 143, 2, 1, 1, ['--lr_policy', 'cosine', '--ema_decay', '0.9']),
])
@pytest.mark.slow
def test_resumed_run_equals_uninterrupted_run(tmp_path, model, model_class, signum, exit_code,
                                              images, batch, stop_at, extra):
    face_folder(tmp_path / 'faces', count=images)
    if model == 'sparnethd':
        extra = [*extra, '--lambda_pcp', '0', '--bottleneck_size', '16']  # fewer levels: a third faster
    common = ['--total_epochs', '2', '--batch_size', str(batch), '--deterministic', *extra]
    assert run_training(train_flags(tmp_path, model, 'straight', *common)) == 0

    with pytest.MonkeyPatch.context() as patch:
        interrupt_after(model_class, stop_at, signum, patch)
        assert run_training(train_flags(tmp_path, model, 'resumed', *common)) == exit_code
    interrupted = load_train_state(str(tmp_path / 'checkpoints' / 'resumed' / 'latest_train_state.pth'))
    assert (interrupted['iteration'], interrupted['epoch'], interrupted['batch_in_epoch']) == (stop_at, 0, stop_at)
    assert run_training(train_flags(tmp_path, model, 'resumed', *common, '--continue_train')) == 0

    straight, _ = read_events(tmp_path / 'logs' / 'straight')
    resumed, _ = read_events(tmp_path / 'logs' / 'resumed')
    total = 2 * images // batch
    assert straight.keys() == resumed.keys() and len(straight['loss/Pix']) == total
    for tag in straight:
        if not tag.startswith('time/'):
            assert resumed[tag] == straight[tag], tag
    nets = ('G',) if model == 'sparnet' else ('G', 'H', 'D')
    for net in nets:
        expected, found = (torch.load(tmp_path / 'checkpoints' / run / f'latest_net_{net}.pth', weights_only=True)
                           for run in ('straight', 'resumed'))
        assert all(torch.equal(expected[k], found[k]) for k in expected), net
    states = [load_train_state(str(tmp_path / 'checkpoints' / run / 'latest_train_state.pth'))
              for run in ('straight', 'resumed')]
    for name, optimizer_state in states[0]['model']['optimizers'].items():
        for index, values in optimizer_state['state'].items():
            found = states[1]['model']['optimizers'][name]['state'][index]
            assert all(torch.equal(values[k], found[k]) for k in values)
    assert states[0]['model']['schedulers'] == states[1]['model']['schedulers']
