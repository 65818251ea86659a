"""What a training run keeps when things go wrong: signals to the process group, full disks, divergence,
an earlier run of the same name, a corrupt training state."""
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from helpers.commands import ROOT, run_training
from helpers.faces import face_folder
from helpers.training import disk_full_for, train_flags
from utils.cli import UserError
from weights.checkpoint import load_train_state
from weights.state_dict import first_non_finite

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out waiting for {what}')
        time.sleep(0.1)


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize('with_validation', [False, True], ids=['train_loader', 'validation_loader'])
def test_sigterm_to_the_process_group_saves_latest_and_leaves_no_worker(tmp_path, with_validation):
    """scancel / systemd signal every process of the job: the loader workers must leave the stop to train.py."""
    face_folder(tmp_path / 'faces', count=8)
    extra = ['--val_dataroot', face_folder(tmp_path / 'val', count=4, seed=1), '--val_freq', '1'] \
        if with_validation else []
    flags = train_flags(tmp_path, 'sparnet', 'term', '--total_epochs', '1000', *extra)
    flags[flags.index('--num_threads') + 1] = '2'
    log_file = tmp_path / 'logs' / 'term' / 'loss_log.txt'
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}  # 3 processes on a shared CPU: no OpenMP threads waiting
    proc = subprocess.Popen([sys.executable, 'train.py', *flags], cwd=ROOT, start_new_session=True, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: log_file.is_file() and 'iter 2 ' in log_file.read_text(), 120, 'two iterations')
        os.killpg(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
        wait_for(lambda: not group_alive(proc.pid), 15, 'the loader workers to exit')
    finally:
        if group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, stderr
    assert 'Traceback' not in stderr and 'DataLoader worker' not in stderr
    iteration = load_train_state(str(tmp_path / 'checkpoints' / 'term' / 'latest_train_state.pth'))['iteration']
    assert iteration >= 2 and f'stopped at iteration {iteration}; `latest` saved' in stderr


def latest_set(save_dir):
    """(iteration of latest_train_state.pth, whether latest_net_G.pth holds the same generator)."""
    state = load_train_state(str(save_dir / 'latest_train_state.pth'))
    net_g = torch.load(save_dir / 'latest_net_G.pth', weights_only=True)
    same = all(torch.equal(value, state['model']['networks']['G'][key]) for key, value in net_g.items())
    return state['iteration'], same


@pytest.mark.slow
def test_full_disk_while_saving_keeps_the_previous_latest_set_and_says_so_in_one_line(tmp_path, monkeypatch,
                                                                                        caplog):
    """The second training state meets a full disk after the second latest_net_G.pth was written."""
    face_folder(tmp_path / 'faces', count=4)
    states_opened = []

    def second_state(name):
        states_opened.extend([name] if name == 'latest_train_state' else [])
        return len(states_opened) == 2 and name == 'latest_train_state'
    disk_full_for(monkeypatch, second_state)
    flags = train_flags(tmp_path, 'sparnet', 'full', '--total_epochs', '3', '--save_latest_freq', '2')
    assert run_training(flags) == 1
    errors = [record.getMessage() for record in caplog.records if record.levelname == 'ERROR']
    assert len(errors) == 1 and '\n' not in errors[0]
    assert errors[0].endswith('latest_train_state.pth: could not write the checkpoint (No space left on device); '
                              'the files of `latest` are unchanged. Stopped at iteration 4; `latest` keeps '
                              'iteration 2: free space (or fix the folder), then resume with --continue_train')
    save_dir = tmp_path / 'checkpoints' / 'full'
    assert latest_set(save_dir) == (2, True)
    assert sorted(os.listdir(save_dir)) == ['latest_net_G.pth', 'latest_train_state.pth']
    monkeypatch.undo()
    assert run_training([*flags, '--continue_train']) == 0
    assert latest_set(save_dir) == (6, True)


def test_full_disk_under_torch_s_zip_writer_is_one_line_naming_it(tmp_path, monkeypatch, caplog):
    """A network file larger than the zip writer's first record: torch turns the file's ENOSPC into
    `RuntimeError: ... unexpected pos`; the message still says the disk is full, in one line."""
    face_folder(tmp_path / 'faces', count=2)
    disk_full_for(monkeypatch, lambda name: name == 'latest_net_G', room=100_000)
    flags = train_flags(tmp_path, 'sparnet', 'full_g', '--total_epochs', '1', '--save_latest_freq', '1')
    assert run_training(flags) == 1
    errors = [record.getMessage() for record in caplog.records if record.levelname == 'ERROR']
    assert len(errors) == 1 and '\n' not in errors[0], errors
    assert errors[0].endswith('latest_net_G.pth: could not write the checkpoint (No space left on device); the files '
                              'of `latest` are unchanged. Stopped at iteration 1; no checkpoint was saved yet, so '
                              '--continue_train has nothing to resume: free space (or fix the folder), then run the '
                              'same command again')
    assert not (tmp_path / 'checkpoints' / 'full_g').exists()  # made by the run, removed as it stayed empty


@pytest.mark.slow
def test_a_full_disk_before_any_latest_points_to_the_snapshot_saved(tmp_path, monkeypatch, caplog):
    """iter_1 was saved, `latest` never: --continue_train would fail, the snapshot's flags start from it."""
    face_folder(tmp_path / 'faces', count=2)
    disk_full_for(monkeypatch, lambda name: name == 'latest_net_G')
    flags = train_flags(tmp_path, 'sparnet', 'full_first', '--total_epochs', '2', '--save_iter_freq', '1',
                        '--save_latest_freq', '2')
    assert run_training(flags) == 1
    errors = [record.getMessage() for record in caplog.records if record.levelname == 'ERROR']
    snapshot = tmp_path / 'checkpoints' / 'full_first' / 'iter_1_net_G.pth'
    assert len(errors) == 1 and errors[0].endswith(
        'Stopped at iteration 2; no `latest` was saved yet, so --continue_train has nothing to resume; free space (or '
        f'fix the folder). The newest usable snapshot is {snapshot} (iteration 1): start a new run from it with '
        f'--pretrain_model_path {snapshot} --resume_iter 1 --overwrite (the generator only: optimizer states and any '
        'other network start afresh)'), errors
    assert sorted(os.listdir(snapshot.parent)) == ['iter_1_net_G.pth']


@pytest.mark.parametrize('network_flags', [[], ['--att_name', 'spar', '--Gnorm', 'bn', '--bottleneck_size', '4']])
def test_corrupt_latest_net_g_does_not_block_a_resume_from_the_training_state(tmp_path, network_flags):
    """--continue_train reads latest_train_state.pth: the network flags come from its generator (or, all given,
    from nothing), never from a broken latest_net_G.pth beside it."""
    face_folder(tmp_path / 'faces', count=2)
    flags = train_flags(tmp_path, 'sparnet', 'resume', '--save_latest_freq', '1')
    assert run_training([*flags, '--total_epochs', '1']) == 0
    save_dir = tmp_path / 'checkpoints' / 'resume'
    (save_dir / 'latest_net_G.pth').write_bytes(b'PK\x03\x04 cut short')
    assert run_training([*flags, '--total_epochs', '2', '--continue_train', *network_flags]) == 0
    assert load_train_state(str(save_dir / 'latest_train_state.pth'))['iteration'] == 2
    assert torch.load(save_dir / 'latest_net_G.pth', weights_only=True).keys()  # written again, whole


@pytest.mark.slow
def test_blow_up_keeps_the_last_finite_latest_and_its_advice_resumes(tmp_path, caplog):
    """--lr 1e30: weights of ~1e30 give the next loss; the `latest` holding them is never put in place."""
    face_folder(tmp_path / 'faces', count=4)
    boom = train_flags(tmp_path, 'sparnet', 'boom', '--total_epochs', '3', '--save_latest_freq', '1', '--lr', '1e30')
    assert run_training(boom) == 1
    assert 'no checkpoint was saved yet (the one staged at iteration 1 was dropped: its weights led here)' \
        in caplog.text
    assert not (tmp_path / 'checkpoints' / 'boom').exists()  # made by the run, removed as it stayed empty

    flags = train_flags(tmp_path, 'sparnet', 'recover', '--save_latest_freq', '1')
    save_dir = tmp_path / 'checkpoints' / 'recover'
    assert run_training([*flags, '--total_epochs', '1']) == 0
    good = torch.load(save_dir / 'latest_net_G.pth', weights_only=True)
    caplog.clear()
    assert run_training([*flags, '--total_epochs', '3', '--continue_train', '--reset_optimizer', '--lr', '1e30']) == 1
    assert ('`latest` keeps iteration 2 (the one staged at iteration 3 was dropped: its weights led here). Resume '
            'from it with lower learning rates: --continue_train --reset_optimizer --lr <below 1e+30>') in caplog.text
    assert latest_set(save_dir) == (2, True)
    assert all(torch.equal(value, good[key])
               for key, value in torch.load(save_dir / 'latest_net_G.pth', weights_only=True).items())
    assert run_training([*flags, '--total_epochs', '3', '--continue_train', '--reset_optimizer', '--lr', '1e-4']) == 0
    assert latest_set(save_dir) == (6, True)
    state = load_train_state(str(save_dir / 'latest_train_state.pth'))
    assert first_non_finite(state['model']) is None
    assert state['model']['optimizers']['G']['param_groups'][0]['lr'] == 1e-4


@pytest.mark.slow
def test_corrupt_training_state_names_the_newest_usable_snapshot_and_the_flags_that_start_from_it(tmp_path, caplog):
    face_folder(tmp_path / 'faces', count=4)
    flags = train_flags(tmp_path, 'sparnet', 'corrupt', '--total_epochs', '3', '--save_epoch_freq', '1',
                        '--save_iter_freq', '5')
    assert run_training(flags) == 0
    save_dir = tmp_path / 'checkpoints' / 'corrupt'
    for name in ('latest_train_state.pth', 'epoch_3_net_G.pth'):  # iteration 6: newer than iter_5
        (save_dir / name).write_bytes((save_dir / name).read_bytes()[:1000])
    snapshot = str(save_dir / 'iter_5_net_G.pth')
    with pytest.raises(UserError) as err:
        run_training([*flags, '--continue_train'])
    message = str(err.value)
    assert '\n' not in message and 'latest_train_state.pth: not a readable PyTorch training state' in message
    assert (f'The newest usable snapshot is {snapshot} (iteration 5): start a new run from it with '
            f'--pretrain_model_path {snapshot} --resume_iter 5 --overwrite') in message
    advice = message.split('start a new run from it with ')[1].split(' (')[0].split()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert run_training([*flags, *advice]) == 0
    assert 'starting at epoch 3, iteration 5' in caplog.text
    assert load_train_state(str(save_dir / 'latest_train_state.pth'))['iteration'] == 6
