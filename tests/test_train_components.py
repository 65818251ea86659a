"""Pieces of the training loop: EMA, learning-rate policies, staged checkpoints, RNG states, logs."""
import argparse
import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from helpers.training import disk_full_for
from models.ema import ema_copy, ema_step, ema_update
from models.lr_policy import create_scheduler, lr_factor
from training.logger import archive_old_logs, image_grid
from utils import distributed
from utils.cli import UserError
from weights.checkpoint import SaveError, StagedCheckpoint, load_train_state, rng_states, set_rng_states
from weights.state_dict import first_non_finite


def test_ema_averages_parameters_and_float_buffers_and_copies_integer_ones():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    ema = ema_copy(net)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for value in net.state_dict().values():
            value.add_(1) if value.is_floating_point() else value.fill_(7)
    ema_update(ema, net, 0.9)
    current = net.state_dict()
    for name, value in ema.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.9 * before[name] + 0.1 * current[name])
        else:
            assert value.item() == 7
    assert ema.training and not any(p.requires_grad for p in ema.parameters())


@pytest.mark.parametrize('norm', [nn.InstanceNorm2d, nn.BatchNorm2d])
def test_ema_step_leaves_h_as_the_published_average_then_train_mode_forward(norm):
    torch.manual_seed(0)
    net = nn.Sequential(nn.utils.spectral_norm(nn.Conv2d(3, 8, 3)), norm(8, affine=True),
                        nn.utils.spectral_norm(nn.Conv2d(8, 4, 3)))
    published, ours = ema_copy(net), ema_copy(net)
    inputs = torch.randn(2, 3, 12, 12)
    for _ in range(3):
        with torch.no_grad():
            for parameter in net.parameters():
                parameter.add_(0.1 * torch.randn_like(parameter))
            net(inputs)  # G's forward: G's own vectors move
            ema_update(published, net, 0.9)
            published(inputs)  # the published H forward, in train mode
        ema_step(ours, net, 0.9, inputs)
    expected = published.state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in ours.state_dict().items())
    assert not torch.equal(expected['0.weight_u'], net.state_dict()['0.weight_u'])


def policy_options(policy, **values):
    return argparse.Namespace(lr_policy=policy, total_epochs=10, n_epochs_decay=2, lr_decay_iters=30,
                              lr_decay_gamma=0.5, **values)


@pytest.mark.parametrize('policy, expected', [
    ('constant', {0: 1.0, 50: 1.0, 100: 1.0}),
    ('linear', {0: 1.0, 80: 1.0, 90: 0.5, 95: 0.25, 100: 0.0}),
    ('step', {0: 1.0, 29: 1.0, 30: 0.5, 65: 0.25}),
    ('cosine', {0: 1.0, 50: 0.5, 100: 0.0}),
])
def test_lr_factors_hand_computed(policy, expected):
    opt = policy_options(policy)
    for iteration, factor in expected.items():
        assert lr_factor(policy, iteration, 100, 10, opt) == pytest.approx(factor, abs=1e-12)


def test_scheduler_sets_the_optimizer_lr_every_iteration():
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=0.2)
    scheduler = create_scheduler(optimizer, policy_options('linear'), iters_per_epoch=10)
    for _ in range(90):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]['lr'] == pytest.approx(0.1)


def test_staged_checkpoint_changes_nothing_until_commit_and_a_full_disk_keeps_the_old_set(tmp_path, monkeypatch):
    def staged(value):
        return StagedCheckpoint(str(tmp_path), 'latest', {'G': {'w': torch.full((3,), value)}}, {'iteration': value})

    def on_disk():
        return (torch.load(tmp_path / 'latest_net_G.pth', weights_only=True)['w'][0].item(),
                load_train_state(str(tmp_path / 'latest_train_state.pth'))['iteration'])
    staged(1).commit()
    second = staged(2)
    assert on_disk() == (1, 1)
    second.commit()
    assert on_disk() == (2, 2)
    disk_full_for(monkeypatch, lambda name: name == 'latest_train_state')
    with pytest.raises(SaveError, match=r'latest_train_state\.pth: could not write the checkpoint \(No space left on '
                                        r'device\); the files of `latest` are unchanged'):
        staged(3)
    assert on_disk() == (2, 2)
    assert sorted(os.listdir(tmp_path)) == ['latest_net_G.pth', 'latest_train_state.pth']


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached Gaussian in NumPy's state
    path = str(tmp_path / 'state.pth')
    torch.save({'iteration': 5, 'rng': rng_states()}, path)
    expected = (random.random(), np.random.standard_normal(3), torch.rand(3))
    set_rng_states(load_train_state(path)['rng'])
    assert random.random() == expected[0]
    np.testing.assert_array_equal(np.random.standard_normal(3), expected[1])
    assert torch.equal(torch.rand(3), expected[2])


@pytest.mark.parametrize('content, message', [
    (None, 'no training state to resume from'),
    (b'garbage', 'not a readable PyTorch training state'),
    ({'weights': torch.zeros(1)}, 'not a training state saved by train.py'),
])
def test_unusable_training_state_explained_in_one_line(tmp_path, content, message):
    path = str(tmp_path / 'latest_train_state.pth')
    if isinstance(content, bytes):
        open(path, 'wb').write(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(UserError, match=message) as err:
        load_train_state(path)
    assert '\n' not in str(err.value)


def test_old_logs_archived_not_overwritten(tmp_path):
    log_dir = tmp_path / 'run'
    assert archive_old_logs(str(log_dir)) is None
    log_dir.mkdir()
    (log_dir / 'loss_log.txt').write_text('old')
    first = archive_old_logs(str(log_dir))
    log_dir.mkdir()
    (log_dir / 'loss_log.txt').write_text('older')
    second = archive_old_logs(str(log_dir))
    assert first != second and not log_dir.exists()
    assert open(os.path.join(first, 'loss_log.txt')).read() == 'old'


def test_image_grid_has_one_row_per_sample_and_one_column_per_visual():
    visuals = {'LR': -torch.ones(5, 3, 8, 8), 'SR': torch.zeros(5, 3, 8, 8), 'HR': torch.ones(5, 3, 8, 8)}
    grid = image_grid(visuals)
    assert grid.shape == (3, 2 + 4 * 10, 2 + 3 * 10)
    assert grid[:, 2:10, 2:10].eq(0).all() and grid[:, 2:10, 12:20].eq(0.5).all() and grid[:, 2:10, 22:30].eq(1).all()


def test_device_setup_without_and_with_torchrun_variables(monkeypatch):
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    opt = argparse.Namespace(gpus=1, device=torch.device('cpu'), gpu_ids=[])
    assert (distributed.setup(opt).rank, opt.world_size) == (0, 1)
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    opt = distributed.setup(argparse.Namespace(gpus=1, device=None, gpu_ids=[3]))
    assert (opt.rank, opt.world_size, opt.device, opt.gpu_ids) == (0, 1, torch.device('cpu'), [])
    assert not distributed.is_distributed() and distributed.any_process([True, 0], opt.device) == [True, False]


def test_several_gpus_without_torchrun_use_data_parallel():
    net = nn.Conv2d(3, 3, 1)
    opt = argparse.Namespace(gpu_ids=[1, 0], device=torch.device('cpu'), sync_bn=False)
    assert isinstance(distributed.wrap(net, opt), nn.DataParallel)
    assert distributed.wrap(net, argparse.Namespace(gpu_ids=[0], device=torch.device('cpu'))) is net


def test_first_non_finite_names_a_tensor_deep_in_an_optimizer_state():
    state = {'networks': {'G': {'w': torch.ones(2)}},
             'optimizers': {'G': {'state': {0: {'step': torch.tensor(3.0), 'exp_avg_sq': torch.tensor([1.0, 1e39])}},
                                  'param_groups': [{'lr': 1e-4}]}}}
    assert first_non_finite(state) == 'optimizers.G.state.0.exp_avg_sq'
    state['optimizers']['G']['state'][0]['exp_avg_sq'][1] = 1.0
    assert first_non_finite(state) is None
    assert first_non_finite({'steps': torch.tensor([2**62])}) is None  # integer tensors hold no NaN
